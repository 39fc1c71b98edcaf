"""The DuckDB warehouse: schema upkeep, SQL macros, the bulk loaders, data-quality rules and the marts."""
