"""The DuckDB warehouse: schema upkeep, raw landing and the bulk loaders."""
