"""Celery task: one outbox flush pass (``pip install django-synerise[celery]``).

:data:`flush_outbox` runs :func:`django_synerise.dispatch.flush`, the same pass
as ``manage.py synerise_flush``. Schedule it with Celery beat::

    CELERY_BEAT_SCHEDULE = {
        "synerise-flush-outbox": {
            "task": "django_synerise.tasks.flush_outbox",
            "schedule": 10.0,  # seconds
        },
    }

It needs no lock of its own: every pass leases the rows it sends (``SELECT ...
FOR UPDATE SKIP LOCKED`` on PostgreSQL, MySQL and MariaDB), so any number of
copies may run at once, on many workers or from several beat instances, and
each event is still sent by one of them only. A pass only takes rows that were
due when it started, so a task always ends even while new events keep coming.

Celery is optional. Without it this module still imports, and
:data:`flush_outbox` is the plain function (callable, with no ``.delay``).
"""

from __future__ import annotations

from typing import Any

from . import dispatch

__all__ = ["TASK_NAME", "flush_outbox"]

#: The task's registered name, for ``CELERY_BEAT_SCHEDULE`` and ``send_task``.
TASK_NAME = "django_synerise.tasks.flush_outbox"


def _flush_outbox(batch_size: int | None = None, max_events: int | None = None) -> dict[str, Any]:
    """Run one flush pass and return what it did (JSON-ready, for result backends).

    ``batch_size`` (1-1000) overrides ``SYNERISE["BATCH_SIZE"]``; ``max_events``
    stops the pass after that many events. Returns
    :meth:`FlushResult.as_dict() <django_synerise.dispatch.FlushResult.as_dict>`:
    ``sent``, ``retried``, ``dead``, ``released``, ``requests``,
    ``rate_limited``, ``remaining``, ``duration`` and ``stopped_by``.

    Raises :class:`~django_synerise.exceptions.AuthenticationError` when
    Synerise refuses the credentials (its rows are released first) and
    :class:`~django_synerise.exceptions.SyneriseConfigurationError` when the
    settings are wrong; Celery then records the task as failed. Every other
    delivery failure is recorded on the events themselves, not raised.
    """
    return dispatch.flush(batch_size=batch_size, max_events=max_events).as_dict()


flush_outbox: Any
try:
    from celery import shared_task
except ImportError:  # the "celery" extra is not installed
    flush_outbox = _flush_outbox
else:
    # shared_task: the task binds to whichever Celery app the project creates.
    # No retries here: a failed event is retried by the outbox's own backoff.
    flush_outbox = shared_task(name=TASK_NAME)(_flush_outbox)
