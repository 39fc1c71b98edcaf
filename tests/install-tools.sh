#!/bin/sh
# What the tests need beyond the project's Python packages: Debian's Chromium for the dashboard's
# browser test (tests/install-browser.sh), Debian's PostgreSQL server for the tests of Dagster's
# instance in PostgreSQL (each starts a private server with initdb/pg_ctl), and a DuckDB 1.4 LTS
# reader in a venv of its own (build/duckdb-1.4/), the DuckDB that BI tools embed, for the test
# that it opens the warehouse.
set -e
cd "$(dirname "$0")/.."
sh tests/install-browser.sh
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    sh tests/apt-install.sh postgresql
fi
READER=build/duckdb-1.4
if ! "$READER/bin/python" -c "import duckdb, sys; sys.exit(not duckdb.__version__.startswith('1.4.'))" 2>/dev/null; then
    echo "Installing a DuckDB 1.4 reader in $READER for the BI compatibility test..."
    python3 -m venv "$READER"
    "$READER/bin/pip" install -q 'duckdb==1.4.5'
fi
