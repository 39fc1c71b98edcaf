"""The local dashboard over the marts (``whitespace-etl dashboard``)."""
