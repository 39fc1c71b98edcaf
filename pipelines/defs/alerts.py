"""Alerts: a failed run, a failing check (quality, schema drift) and a stale table each send one message
to the channels a team configures (``WHITESPACE_ALERT_*``: e-mail through SMTP, a Slack-compatible
webhook). Two Dagster sensors, run by the daemon (``dagster dev``, or ``dagster-daemon run`` beside a
cron of ``whitespace-etl sync`` on the same ``DAGSTER_HOME``):

- ``alert_on_run_failure``: Dagster's run-failure sensor over every run of the instance, the CLI's
  included (a run that run monitoring marks failed as well);
- ``alert_on_checks``: every check evaluation since its cursor; a check alerts when it starts failing
  (per asset, check and partition), not again while it keeps failing, and again only after it passed.
  Stale tables are the freshness checks failing (``pipelines.defs.freshness``).

Messages carry no secret: the text goes through the client's redaction, and the configured secrets
(the refresh token, the webhook URL, the SMTP password) are masked wherever they appear. A channel
that cannot be reached is logged on the sensor's tick and does not stop the other one.
"""

from __future__ import annotations

import dataclasses
import json
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage

import dagster as dg
import httpx

from pipelines import config
from pipelines.client.redact import redact
from pipelines.defs import checks
from pipelines.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

SUBJECT_PREFIX = "[whitespace-etl]"
RUN_FAILURE = "run_failure"
"""The name that mutes run-failure alerts in ``WHITESPACE_ALERT_MUTE``."""
MAX_TEXT = 2000


@dataclasses.dataclass(frozen=True)
class Alert:
    subject: str
    body: str


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with tokens redacted and every secret in ``secrets`` masked."""
    text = redact(text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text[:MAX_TEXT]


def send(alert: Alert, settings: config.AlertConfig, on_error: Callable[[str], object] = lambda _: None) -> list[str]:
    """Sends ``alert`` to every configured channel; returns the channels it reached. A channel's failure
    goes to ``on_error`` (without the secret) and does not stop the next one."""
    secrets = config.secret_values()
    subject, body = scrub(alert.subject, secrets), scrub(alert.body, secrets)
    reached = []
    if settings.email:
        try:
            _email(subject, body, settings)
            reached.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            on_error(f"Alert e-mail through {settings.smtp_host}:{settings.smtp_port} failed: "
                     f"{type(exc).__name__}: {scrub(str(exc), secrets)}")
    if settings.webhook_url:
        try:
            r = httpx.post(settings.webhook_url, json={"text": f"*{subject}*\n{body}"}, timeout=30)
            r.raise_for_status()
            reached.append("webhook")
        except httpx.HTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            on_error(f"Alert webhook failed: {type(exc).__name__}{f' (HTTP {status})' if status else ''}")
    return reached


def _email(subject: str, body: str, settings: config.AlertConfig) -> None:
    msg = EmailMessage()
    msg["Subject"] = f"{SUBJECT_PREFIX} {subject}"
    msg["From"] = settings.email_from
    msg["To"] = ", ".join(settings.email_to)
    msg.set_content(body)
    if settings.smtp_tls == "ssl":
        server: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=30,
                                                context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30)
    with server:
        if settings.smtp_tls == "starttls":
            server.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            server.login(settings.smtp_user, settings.smtp_password)
        server.send_message(msg)


def run_failure_alert(run: dg.DagsterRun, message: str) -> Alert:
    partition = run.tags.get("dagster/partition")
    first, last = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    what = f"{run.job_name}" + (f" for {partition}" if partition else f" for {first} to {last}" if first else "")
    return Alert(
        subject=f"run failed: {what}",
        body=f"Run {run.run_id} of {what} failed.\n\n{message.strip()}\n\n"
             "Its logs are in the Dagster UI (Runs). To silence run-failure alerts, add run_failure to "
             "WHITESPACE_ALERT_MUTE.")


def check_alert(evaluation: dg.AssetCheckEvaluation, partition: str | None = None) -> Alert:
    asset = evaluation.asset_key.to_user_string()
    where = f" ({partition})" if partition else ""
    severity = evaluation.severity.value
    stale = evaluation.check_name == "freshness_check"
    subject = f"stale: {asset}" if stale else f"check failed ({severity}): {evaluation.check_name} on {asset}{where}"
    details = [f"{k}: {_short(v.value)}" for k, v in evaluation.metadata.items() if not k.startswith("dagster/")]
    if checks.per_partition(evaluation) is not None:  # a run of several organisations: this one's own figures
        details = [f"{k.removeprefix(f'{partition} ')}: {_short(v.value)}" for k, v in evaluation.metadata.items()
                   if k.startswith(f"{partition} ")]
    body = "\n".join([
        f"{asset} has not been updated or confirmed current in time." if stale
        else f"Check {evaluation.check_name} on {asset}{where}: {severity}.",
        evaluation.description or "", *details, "",
        f"To silence it, add {evaluation.check_name} (or {asset}) to WHITESPACE_ALERT_MUTE."])
    return Alert(subject=subject, body=body)


def _short(value: object, limit: int = 600) -> str:
    """A metadata value as text, JSON for lists and mappings, cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + " ..."


def muted(settings: config.AlertConfig, *names: str) -> bool:
    return any(n in settings.mute for n in names)


@dg.run_failure_sensor(name="alert_on_run_failure", monitor_all_code_locations=True, minimum_interval_seconds=30,
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Sends one message per failed run to the WHITESPACE_ALERT_* channels.")
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    settings = config.alerts()
    if not settings.configured or muted(settings, RUN_FAILURE, context.dagster_run.job_name):
        return
    message = context.failure_event.message or ""
    for event in context.get_step_failure_events():
        if event.step_failure_data and event.step_failure_data.error:
            err = event.step_failure_data.error
            while err.cause is not None and "dagster" in err.cls_name.lower():
                err = err.cause
            text = err.message.strip()
            text = text.split(f"{err.cls_name}: ", 1)[1] if f"{err.cls_name}: " in text.split("\n")[0] else text
            message = f"{event.step_key}: {err.cls_name}: {text}"
            break
    reached = send(run_failure_alert(context.dagster_run, message), settings, context.log.error)
    context.log.info(f"Run failure alert sent to {', '.join(reached) or 'no channel'}")


@dataclasses.dataclass
class ChecksCursor:
    after: int = -1
    """The last check evaluation seen (event log storage id); -1: not started."""
    failing: list[str] = dataclasses.field(default_factory=list)
    """The checks (asset/check/partition) last seen failing: they alerted already."""

    @classmethod
    def parse(cls, text: str | None) -> ChecksCursor:
        return cls(**json.loads(text)) if text else cls()

    def dump(self) -> str:
        return json.dumps(dataclasses.asdict(self))


BATCH = 1000


def _run_partition(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The partition (organisation) of the run that evaluated a check; None for a runless evaluation."""
    run = instance.get_run_by_id(run_id) if run_id else None
    return run.tags.get("dagster/partition") if run else None


@dg.sensor(name="alert_on_checks", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Sends one message when a check starts failing (quality, schema drift, freshness) to "
                       "the WHITESPACE_ALERT_* channels.")
def alert_on_checks(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    cursor = ChecksCursor.parse(context.cursor)
    kind = dg.DagsterEventType.ASSET_CHECK_EVALUATION
    if cursor.after < 0:  # first tick: what failed before the alerts were switched on is not sent
        latest = context.instance.event_log_storage.get_event_records(dg.EventRecordsFilter(event_type=kind), limit=1, ascending=False)
        context.update_cursor(ChecksCursor(after=latest[0].storage_id if latest else 0).dump())
        return dg.SkipReason("started: alerts for check evaluations from now on")
    records = context.instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(event_type=kind, after_cursor=cursor.after), limit=BATCH, ascending=True)
    settings = config.alerts()
    failing = set(cursor.failing)
    sent = 0
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            continue
        outcomes = checks.per_partition(evaluation) or {
            evaluation.partition or _run_partition(context.instance, record.event_log_entry.run_id): evaluation.passed}
        for partition, passed in outcomes.items():  # a run of several organisations: each one on its own
            key = f"{evaluation.asset_key.to_user_string()}/{evaluation.check_name}/{partition or ''}"
            if passed:
                failing.discard(key)
                continue
            if key in failing:
                continue
            failing.add(key)
            if settings.configured and not muted(settings, evaluation.check_name, evaluation.asset_key.to_user_string()):
                send(check_alert(evaluation, partition), settings, context.log.error)
                sent += 1
    after = records[-1].storage_id if records else cursor.after
    context.update_cursor(ChecksCursor(after=after, failing=sorted(failing)).dump())
    return dg.SkipReason(f"{len(records)} check evaluations read, {sent} alert{'s' if sent != 1 else ''} sent")
