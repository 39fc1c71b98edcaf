"""The application: the ``whitespace-etl`` command, the sync that runs a plan, and the dashboard."""
