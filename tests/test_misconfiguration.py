"""Every misconfiguration a user can make, and every failure of the platform they can meet, ends in a
few lines that say what to do: a non-zero exit, no traceback, no secret."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.app.cli import main
from sandbox import BUCKET, SUMO_REFRESH_TOKEN, SandboxServer
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "renewable-token-that-must-not-show"


def login(server: SandboxServer | None, **overrides: str) -> dict[str, str]:
    base = {"WHITESPACE_SYNC_URL": f"{server.url}/sync" if server else "http://127.0.0.1:9/sync",
            "WHITESPACE_BUCKET": BUCKET,
            "WHITESPACE_API_URL": f"{server.url}/api" if server else "http://127.0.0.1:9/api",
            "WHITESPACE_REFRESH_TOKEN": SUMO_REFRESH_TOKEN, "WHITESPACE_USER_NAME": "Sam Sumo"}
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


# name: (environment, given the sandbox's URL or None; what the error line must say)
CASES = {
    "nothing configured": (lambda s: {}, "No Whitespace login is configured"),
    "part of a login": (lambda s: {"WHITESPACE_API_URL": "https://example.invalid/api"},
                        "Missing WHITESPACE_SYNC_URL, WHITESPACE_BUCKET, WHITESPACE_REFRESH_TOKEN"),
    "user ids that are not MU ids": (lambda s: login(s, WHITESPACE_USER_IDS="abc"), "WHITESPACE_USER_IDS holds 'abc'"),
    "a timeout that is not a number": (lambda s: login(s, WHITESPACE_TIMEOUT_SECONDS="ten"),
                                       "WHITESPACE_TIMEOUT_SECONDS must be a number"),
    "a URL without a scheme": (lambda s: login(s, WHITESPACE_API_URL="127.0.0.1:8080/api"),
                               "WHITESPACE_API_URL is not an http(s) URL"),
    "a lock wait that is not a number": (lambda s: login(s, WHITESPACE_LOCK_WAIT_SECONDS="soon"),
                                         "WHITESPACE_LOCK_WAIT_SECONDS must be a number"),
    "a storage version that is not one": (lambda s: login(s, WHITESPACE_DUCKDB_STORAGE_VERSION="1.4"),
                                          "WHITESPACE_DUCKDB_STORAGE_VERSION is a DuckDB version such as v1.4.0"),
    "alert e-mail without recipients": (lambda s: login(s, WHITESPACE_ALERT_SMTP_HOST="mail.example.test"),
                                        "WHITESPACE_ALERT_EMAIL_FROM and WHITESPACE_ALERT_EMAIL_TO must be set too"),
    "an alert webhook that is not a URL": (lambda s: login(s, WHITESPACE_ALERT_WEBHOOK_URL="hooks.slack.com/x"),
                                           "WHITESPACE_ALERT_WEBHOOK_URL must be an http(s) URL"),
    "several logins, one without its token": (
        lambda s: login(s, WHITESPACE_REFRESH_TOKEN=None, WHITESPACE_LOGINS="acme,north",
                        WHITESPACE_LOGIN_ACME_REFRESH_TOKEN=SUMO_REFRESH_TOKEN),
        "WHITESPACE_LOGIN_NORTH_REFRESH_TOKEN is not set"),
    "several logins and the one login's token together": (lambda s: login(s, WHITESPACE_LOGINS="acme"),
                                                          "WHITESPACE_LOGINS and WHITESPACE_REFRESH_TOKEN are both set"),
    "several logins, every token dead": (
        lambda s: login(s, WHITESPACE_REFRESH_TOKEN=None, WHITESPACE_USER_NAME=None, WHITESPACE_LOGINS="acme,north",
                        WHITESPACE_LOGIN_ACME_REFRESH_TOKEN=SECRET, WHITESPACE_LOGIN_NORTH_REFRESH_TOKEN=SECRET + "2"),
        "set it as WHITESPACE_LOGIN_ACME_REFRESH_TOKEN"),
    "a warehouse URL that is not PostgreSQL": (lambda s: login(s, WHITESPACE_WAREHOUSE_URL="mysql://etl@db/wh"),
                                               "WHITESPACE_WAREHOUSE_URL is a PostgreSQL URL"),
    "a sandbox switch that is not 0 or 1": (lambda s: {"WHITESPACE_SANDBOX": "maybe"}, "WHITESPACE_SANDBOX must be"),
    "a bucket Sync Gateway does not have": (lambda s: login(s, WHITESPACE_BUCKET="nosuchbucket"),
                                            "no bucket 'nosuchbucket'"),
    "a dead renewable token": (lambda s: login(s, WHITESPACE_REFRESH_TOKEN=SECRET), "User Profile panel"),
    "a SUMO login without a name": (lambda s: login(s, WHITESPACE_USER_NAME=None), "Set WHITESPACE_USER_NAME"),
    "a name that is not a member": (lambda s: login(s, WHITESPACE_USER_NAME="Nobody"), "No member named 'Nobody'"),
    "the sandbox switch and a login together": (lambda s: login(s, WHITESPACE_SANDBOX="1"),
                                                "WHITESPACE_SANDBOX=1 and a Whitespace login are both set"),
}


@contextlib.contextmanager
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, str]) -> Iterator[None]:
    for name in [n for n in os.environ if n.startswith("WHITESPACE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WHITESPACE_WAREHOUSE", str(tmp_path / "data" / "warehouse.duckdb"))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    yield


def assert_one_clear_error(code: int, err: str, expected: str, secrets: tuple[str, ...] = ()) -> None:
    assert code != 0, err
    assert expected in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 4 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for secret in (SECRET, SUMO_REFRESH_TOKEN, *secrets):
        assert secret not in err


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_misconfigured_sync_says_what_to_do_in_one_line(sandbox, case, monkeypatch, tmp_path, capfd) -> None:
    make_env, expected = case
    with environment(monkeypatch, tmp_path, make_env(sandbox)):
        code = main(["sync"])
    out, err = capfd.readouterr()
    assert_one_clear_error(code, err, expected)
    assert not (tmp_path / "data" / "warehouse.duckdb").exists(), "nothing was written"


def test_an_unreachable_platform_says_so(monkeypatch, tmp_path, capfd, waits) -> None:
    port = free_port()  # nothing listens there
    values = login(None, WHITESPACE_SYNC_URL=f"http://127.0.0.1:{port}/sync",
                   WHITESPACE_API_URL=f"http://127.0.0.1:{port}/api")
    with environment(monkeypatch, tmp_path, values):
        code = main(["sync"])
    assert_one_clear_error(code, capfd.readouterr().err, "Sync Gateway unreachable")
    assert len(waits) == 5, "it retried before giving up"


def test_an_unreachable_postgresql_warehouse_says_so_without_its_password(sandbox, monkeypatch, tmp_path,
                                                                         capfd) -> None:
    url = f"postgresql+psycopg2://etl:{SECRET}-pw@127.0.0.1:{free_port()}/warehouse"
    with environment(monkeypatch, tmp_path, login(sandbox, WHITESPACE_WAREHOUSE_URL=url)):
        code = main(["sync"])
    out, err = capfd.readouterr()
    assert_one_clear_error(code, err, "The PostgreSQL warehouse (WHITESPACE_WAREHOUSE_URL) cannot be reached")
    assert f"{SECRET}-pw" not in out + err


def test_several_writers_need_the_postgresql_warehouse(sandbox, monkeypatch, tmp_path, capfd) -> None:
    with environment(monkeypatch, tmp_path, login(sandbox)):
        code = main(["sync", "--writers", "4"])
    assert_one_clear_error(code, capfd.readouterr().err, "--writers 4: more than one writer at once needs the warehouse "
                                                         "in PostgreSQL (WHITESPACE_WAREHOUSE_URL)")


def test_the_debug_flag_shows_the_traceback(monkeypatch, tmp_path) -> None:
    with environment(monkeypatch, tmp_path, login(None, WHITESPACE_USER_IDS="abc")), pytest.raises(Exception) as info:
        main(["--debug", "sync"])
    assert "WHITESPACE_USER_IDS" in str(info.value)


def test_without_configuration_the_sandbox_is_never_used(monkeypatch, tmp_path) -> None:
    """A process that lacks the environment (a cron job, a worker) fails: it does not sync the sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHITESPACE_")}
    env.update(PYTHONPATH=str(ROOT), DAGSTER_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-m", "pipelines.app.cli", "sync"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert_one_clear_error(out.returncode, out.stderr, "WHITESPACE_SANDBOX=1")
    assert "Sandbox" not in out.stdout and not (tmp_path / "data").exists()


def test_a_run_launched_without_the_environment_names_the_missing_variables(tmp_path) -> None:
    """The code location loads with nothing set; a run then fails with the variables' names."""
    import dagster as dg

    from pipelines.definitions import defs

    with dg.instance_for_test() as instance:
        result = defs().resolve_job_def("reference_data").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error, messages = failure.step_failure_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    message = " ".join(messages)
    assert "No Whitespace login is configured" in message and "WHITESPACE_REFRESH_TOKEN" in message


def test_a_warehouse_held_by_another_writer_fails_fast_with_one_line(sandbox, monkeypatch, tmp_path, capfd) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, duckdb, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "time.sleep(600)", str(tmp_path / "data" / "warehouse.duckdb")],
        stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    (tmp_path / "data").mkdir(exist_ok=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with environment(monkeypatch, tmp_path, login(sandbox, WHITESPACE_LOCK_WAIT_SECONDS="0")):
            code = main(["sync"])
    finally:
        holder.kill()
        holder.wait()
    out, err = capfd.readouterr()
    assert code == 1 and "is locked by another process" in err and "Traceback" not in err, err
    assert out.count("FAILED") == 1 and "Stopped:" in out, "the first locked run stops the sync: " + out
    assert len([line for line in err.splitlines() if line.strip()]) <= 3, err


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB file system: the warehouse fills it at once."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line(sandbox, full_disk, monkeypatch, tmp_path, capfd) -> None:
    with environment(monkeypatch, tmp_path, login(sandbox)):
        monkeypatch.setenv("WHITESPACE_WAREHOUSE", str(full_disk / "warehouse.duckdb"))
        code = main(["sync"])
    out, err = capfd.readouterr()
    assert code != 0 and "Traceback" not in err + out, err
    assert "No space left on device" in err or "disk is full" in err, err
    assert len([line for line in err.splitlines() if line.strip()]) <= 4, err


def test_the_readme_lists_every_variable_the_project_reads() -> None:
    from pipelines import config

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration"):readme.index("## How the client behaves")]
    assert [name for name in config.VARIABLES if f"| `{name}` |" not in table] == []


def test_sync_gateway_answers_an_unknown_bucket_with_its_404(sandbox) -> None:
    import httpx

    r = httpx.get(f"{sandbox.url}/sync/otherbucket/_oidc_refresh", params={"refresh_token": "x"}, trust_env=False)
    assert r.status_code == 404 and r.json() == {"error": "not_found", "reason": 'no such database "otherbucket"'}
