"""A private PostgreSQL server for a test: Debian's ``initdb`` and ``pg_ctl`` on a free loopback port, in a
temporary directory, stopped and deleted afterwards (``tests/install-tools.sh`` installs the package)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port

USER = "etl"


def bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    assert initdb, "PostgreSQL's initdb is missing: run 'sh tests/install-tools.sh' (it installs Debian's postgresql)"
    return Path(initdb).parent


@contextlib.contextmanager
def private_postgres(*databases: str) -> Iterator[dict[str, str]]:
    """Yields a SQLAlchemy URL (``postgresql+psycopg2://``) per database in ``databases``."""
    bin_ = bindir()
    root = Path(tempfile.mkdtemp(prefix="whitespace-pg-"))
    data = root / "data"
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own user owns the data directory
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        out = subprocess.run([*as_owner, *args], capture_output=True, text=True, cwd=root)
        assert out.returncode == 0, f"{args[0]} failed: {out.stdout}{out.stderr}"

    run(str(bin_ / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
    run(str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        for db in databases:
            run(str(bin_ / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, db)
        yield {db: f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/{db}" for db in databases}
    finally:
        subprocess.run([*as_owner, str(bin_ / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)
