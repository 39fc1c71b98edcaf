"""Alerts reach a loopback SMTP server and a loopback webhook: one message for a failing check, one for a
stale table, one for a failed run, none while the same thing keeps failing, and no secret in any."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.defs import alerts
from sandbox import SUMO_REFRESH_TOKEN
from tests.operations.receivers import SMTP_PASSWORD, WEBHOOK_PATH, Receivers
from tests.pipeline.conftest import SUMO_IDS


class Sensor:
    """Ticks a sensor as the daemon would: its cursor kept from one tick to the next."""

    def __init__(self, sensor: dg.SensorDefinition, pipeline) -> None:
        self.sensor, self.pipeline, self.cursor = sensor, pipeline, None

    def tick(self) -> None:
        with dg.build_sensor_context(instance=self.pipeline.instance, cursor=self.cursor,
                                     definitions=self.pipeline.defs) as context:
            data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor


@pytest.fixture
def receivers(monkeypatch):
    with Receivers() as rx:
        for name, value in rx.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("WHITESPACE_REFRESH_TOKEN", SUMO_REFRESH_TOKEN)  # a secret no message may show
        yield rx


def freshness_of_risks(pipeline) -> dg.ExecuteInProcessResult:
    key = dg.AssetCheckKey(dg.AssetKey("risks"), "freshness_check")
    job = pipeline.defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection={key})
    return job.execute_in_process(instance=pipeline.instance)


def new_messages(rx: Receivers, seen: int) -> list[str]:
    """What arrived since ``seen`` messages, each channel having received the same number."""
    assert len(rx.mailbox.messages) == len(rx.webhook.posts), (rx.mailbox.messages, rx.webhook.posts)
    return [m for m in rx.mailbox.messages[seen:]]


def test_each_failure_sends_one_message_without_secrets(pipeline, receivers, clock) -> None:
    rx = receivers
    checks, runs = Sensor(alerts.alert_on_checks, pipeline), Sensor(alerts.alert_on_run_failure, pipeline)
    checks.tick()
    runs.tick()  # started: what failed before is not sent
    org = SUMO_IDS[2]
    pipeline.reference()
    pipeline.sync(org)
    checks.tick()
    assert new_messages(rx, 0) == [], "every check passes on the sandbox's own data"

    # A failing check: a contract field renamed on the platform (schema drift, WARN).
    pipeline.server.set_faults(contract_drift="renamed")
    pipeline.server.advance(changed_fraction=0.5, new_roots=0)
    pipeline.sync(org)
    checks.tick()
    [drift] = new_messages(rx, 0)
    assert "check failed (WARN): contracts_schema_drift on contracts" in drift and org in drift
    assert "placingStatus" in drift, "the message names what drifted"
    pipeline.server.advance(changed_fraction=0.5, new_roots=0)
    pipeline.sync(org)  # still drifting: no second message
    checks.tick()
    assert len(new_messages(rx, 0)) == 1

    # A stale table: two days later, nothing synced since.
    assert freshness_of_risks(pipeline).success
    checks.tick()
    assert len(new_messages(rx, 0)) == 1, "fresh: no message"
    clock(2 * 86400)
    freshness_of_risks(pipeline)
    checks.tick()
    [stale] = new_messages(rx, 1)
    assert "stale: risks" in stale and "overdue" in stale
    freshness_of_risks(pipeline)  # still stale: no second message
    checks.tick()
    assert len(new_messages(rx, 0)) == 2

    # A failed run: the login's renewable token revoked.
    pipeline.server.admin("revoke", refresh_token=SUMO_REFRESH_TOKEN)
    assert not pipeline.sync(org, raise_on_error=False).success
    runs.tick()
    [failed] = new_messages(rx, 2)
    assert f"run failed: sync_organisation for {org}" in failed and "RefreshTokenRejected" in failed
    runs.tick()
    checks.tick()
    assert len(new_messages(rx, 0)) == 3, "each failure once"

    everything = "\n".join(rx.texts())
    for secret in (SUMO_REFRESH_TOKEN, SMTP_PASSWORD, WEBHOOK_PATH, "webhook-secret"):
        assert secret not in everything


def test_muted_checks_send_nothing(pipeline, receivers, monkeypatch) -> None:
    monkeypatch.setenv("WHITESPACE_ALERT_MUTE", "contracts_schema_drift")
    checks = Sensor(alerts.alert_on_checks, pipeline)
    checks.tick()
    pipeline.reference()
    pipeline.server.set_faults(contract_drift="renamed")
    pipeline.sync(SUMO_IDS[2])
    checks.tick()
    assert receivers.texts() == []


def test_an_unreachable_channel_does_not_stop_the_other(monkeypatch) -> None:
    from pipelines import config

    with Receivers() as rx:
        env = {**rx.env, "WHITESPACE_ALERT_SMTP_PORT": "1"}  # nothing listens there
        settings = config.alerts(env)
        reached = alerts.send(alerts.Alert("subject", "body"), settings)
    assert reached == ["webhook"] and len(rx.webhook.posts) == 1


def test_a_check_over_several_organisations_alerts_for_each_one_that_starts_failing(pipeline, receivers) -> None:
    """A run of several organisations gives each check one result naming those it failed for: an
    organisation that starts failing alerts, by name, even while another one of the same run keeps failing."""
    checks = Sensor(alerts.alert_on_checks, pipeline)
    checks.tick()

    def evaluated(*failed: str) -> None:
        pipeline.instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("contracts"), check_name="contracts_schema_drift", passed=not failed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"organisations": len(SUMO_IDS), "partitions": dg.MetadataValue.json(SUMO_IDS),
                      "failed_organisations": dg.MetadataValue.json(list(failed)),
                      **{f"{key} drift": dg.MetadataValue.json({"field": f"drifted-{key[-4:]}"}) for key in failed}}))
        checks.tick()

    evaluated(SUMO_IDS[0])
    [first] = new_messages(receivers, 0)
    assert SUMO_IDS[0] in first and f"drifted-{SUMO_IDS[0][-4:]}" in first
    evaluated(SUMO_IDS[0], SUMO_IDS[2])  # the first still failing, the third starts
    [third] = new_messages(receivers, 1)
    assert SUMO_IDS[2] in third and SUMO_IDS[0] not in third, "its own figures, not the other's"
    evaluated()
    evaluated(SUMO_IDS[0])  # passed in between: failing again is news again
    assert len(new_messages(receivers, 0)) == 3


def test_no_secret_reaches_the_output_of_a_verbose_command_or_any_file_it_writes(tmp_path) -> None:
    """``whitespace-etl -v alert-test`` printed the webhook URL (httpx's INFO line): the redaction knew tokens,
    Bearer values and JWTs only. Every secret set, each command at -v: none in what it prints, nor in any file
    it writes (the warehouse, the landing, the marts' export, Dagster's run records)."""
    from sandbox import BUCKET, SandboxServer
    from tests.pipeline.test_cli import run

    secrets = (WEBHOOK_PATH.rsplit("/", 1)[1], SMTP_PASSWORD, SUMO_REFRESH_TOKEN)
    outputs = []
    with Receivers() as rx, SandboxServer(seed=4, scale=0.1) as server:
        env = {**rx.env, "WHITESPACE_SYNC_URL": server.sync_url, "WHITESPACE_BUCKET": BUCKET,
               "WHITESPACE_API_URL": server.api_url, "WHITESPACE_REFRESH_TOKEN": SUMO_REFRESH_TOKEN,
               "WHITESPACE_USER_NAME": "Sam Sumo", "WHITESPACE_WAREHOUSE": str(tmp_path / "data" / "warehouse.duckdb")}
        for command in (["alert-test"], ["sync"], ["sync", "--all"], ["sql", "SELECT count(*) FROM risks"],
                        ["export", "--to", str(tmp_path / "exported")], ["rebuild"], ["prune", "--dry-run"]):
            said = run(["-v", *command], tmp_path, env)
            assert said.returncode == 0, (command, said.stdout + said.stderr)
            outputs.append(said.stdout + said.stderr)
        assert rx.webhook.posts, "the test message went out"
    assert any("HTTP Request" in out for out in outputs), "the verbose log of the requests is there, masked"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in written) and any(p.name.endswith(".db") for p in written)
    for secret in secrets:
        assert not any(secret in out for out in outputs), secret
        leaked = [p for p in written if secret.encode() in p.read_bytes()]
        assert not leaked, (secret, leaked)
