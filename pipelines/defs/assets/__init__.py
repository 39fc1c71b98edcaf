"""The assets: raw answers, the warehouse tables they load, and the marts."""
