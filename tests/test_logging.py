"""Logging: the django_synerise logger tree, one structured line per flush pass, failure lines
with status and request id, and no secret in any record (passes run against LocalSynerise)."""

from __future__ import annotations

import logging

import pytest

import django_synerise
from django_synerise import dispatch, outbox
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests.docs_samples import run_sample

pytestmark = pytest.mark.django_db


def enqueue(count: int, action: str = "dog.bark") -> list[OutboxEvent]:
    rows = [
        django_synerise.track(action, client={"customId": str(i)}, params={"n": i})
        for i in range(count)
    ]
    assert all(rows)
    return rows  # type: ignore[return-value]


def pass_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "synerise_flush")]


def all_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.name} {r.getMessage()} {getattr(r, 'synerise_flush', '')}" for r in caplog.records
    )


def test_one_structured_line_per_pass(synerise_stand_in: LocalSynerise, caplog):
    enqueue(3)
    with caplog.at_level(logging.INFO, logger="django_synerise"):
        result = dispatch.flush()
    assert result.sent == 3
    (record,) = pass_records(caplog)
    assert record.name == "django_synerise.dispatch"
    assert record.levelno == logging.INFO
    fields = record.synerise_flush
    assert {k: fields[k] for k in ("sent", "retried", "dead", "released", "requests")} == {
        "sent": 3,
        "retried": 0,
        "dead": 0,
        "released": 0,
        "requests": 1,
    }
    assert fields["remaining"] == 0
    assert fields["stopped_by"] == "drained"
    assert fields["rate_limited"] == 0
    assert isinstance(fields["duration"], float) and fields["duration"] >= 0
    assert fields["owner"]
    assert record.getMessage().startswith("flush pass: sent=3 retried=0 dead=0")
    assert len(synerise_stand_in.events) == 3


def test_failure_lines_carry_status_message_and_request_id(
    synerise_stand_in: LocalSynerise, caplog
):
    enqueue(2)
    synerise_stand_in.inject("500", times=1)
    with caplog.at_level(logging.INFO, logger="django_synerise"):
        result = dispatch.flush()
    assert result.retried == 2
    (record,) = pass_records(caplog)
    assert record.synerise_flush["retried"] == 2 and record.synerise_flush["sent"] == 0
    failed = [r for r in synerise_stand_in.requests if r.status == 500]
    assert len(failed) == 1
    failures = [
        r
        for r in caplog.records
        if r.name == "django_synerise.client" and r.levelno == logging.WARNING
    ]
    assert len(failures) == 1
    message = failures[0].getMessage()
    assert "/v4/events/batch" in message
    assert "HTTP 500" in message
    assert f"request id {failed[0].request_id}" in message


def test_a_rejected_event_is_logged_with_synerise_message(synerise_stand_in: LocalSynerise, caplog):
    rows = enqueue(3)
    bad_salt = rows[1].salt
    synerise_stand_in.reject(lambda item: item.get("eventSalt") == bad_salt)
    with caplog.at_level(logging.INFO, logger="django_synerise"):
        result = dispatch.flush()
    assert (result.sent, result.dead) == (2, 1)
    (record,) = pass_records(caplog)
    assert record.synerise_flush["dead"] == 1 and record.synerise_flush["sent"] == 2
    rejected = [
        r for r in caplog.records if r.levelno == logging.WARNING and "HTTP 400" in r.getMessage()
    ]
    assert rejected, all_text(caplog)
    assert OutboxEvent.objects.get(pk=rows[1].pk).status == "dead"


def test_an_idle_pass_logs_at_debug_only(synerise_stand_in: LocalSynerise, caplog):
    with caplog.at_level(logging.DEBUG, logger="django_synerise"):
        dispatch.flush()
    (record,) = pass_records(caplog)
    assert record.levelno == logging.DEBUG
    assert record.synerise_flush["requests"] == 0


def test_debug_shows_request_bodies_without_secrets(synerise_stand_in: LocalSynerise, caplog):
    enqueue(2, action="secret.check")
    synerise_stand_in.inject("expire_tokens", times=1)  # forces a second login
    with caplog.at_level(logging.DEBUG, logger="django_synerise"):
        dispatch.flush()
    text = all_text(caplog)
    assert "secret.check" in text  # the DEBUG body line
    assert synerise_stand_in.api_key not in text
    assert synerise_stand_in.tracker_key not in text
    assert "eyJ" not in text  # no JWT (header or payload segment)
    for record in caplog.records:
        assert record.exc_info is None or synerise_stand_in.api_key not in str(record.exc_info)


def test_one_logger_tree_catches_client_dispatch_and_outbox(
    synerise_stand_in: LocalSynerise,
):
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger("django_synerise")
    root.addHandler(handler)
    try:
        rows = enqueue(1)
        synerise_stand_in.inject("502", times=1)
        dispatch.flush()
        OutboxEvent.objects.filter(pk=rows[0].pk).update(status="dead")
        outbox.requeue()
    finally:
        root.removeHandler(handler)
    names = {record.name for record in records}
    assert {
        "django_synerise.client",
        "django_synerise.dispatch",
        "django_synerise.outbox",
    } <= names
    assert all(name.startswith("django_synerise.") for name in names)


def test_docs_logging_settings(synerise_stand_in: LocalSynerise, capsys):
    import logging.config

    # The LOGGING example of docs/operations.md.
    LOGGING = run_sample("logging-settings")["LOGGING"]

    logger = logging.getLogger("django_synerise")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        logging.config.dictConfig(LOGGING)
        enqueue(2)
        dispatch.flush()
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    err = capsys.readouterr().err
    assert "INFO django_synerise.dispatch flush pass: sent=2 retried=0 dead=0" in err
