"""Benchmarks: this project against dlt and against DuckDB reading the same JSON itself."""
