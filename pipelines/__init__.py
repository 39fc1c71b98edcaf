"""Whitespace to DuckDB, one folder per stage in the order the data flows: ``client`` (HTTP, auth,
retries, SUMO) -> ``landing`` (answers on disk as received) -> ``extract`` (what to fetch) ->
``warehouse`` (DuckDB loaders, checks' SQL, marts) -> ``defs`` (Dagster) -> ``app`` (CLI, sync,
dashboard). ``config`` is the one reader of the environment; ``definitions`` the code location."""
