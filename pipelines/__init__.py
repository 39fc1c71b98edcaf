"""Whitespace to DuckDB: the Dagster code location (definitions.py) and the plain-Python client."""
