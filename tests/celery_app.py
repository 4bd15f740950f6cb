"""The test suite's Celery app: configured from Django settings, tasks from the installed apps.

A project's own ``celery.py`` looks the same. The broker comes from
``CELERY_BROKER_URL`` (the local Redis by default), so a test can give each
worker a database and queue of its own.
"""

from __future__ import annotations

import json
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.broker_url = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
app.conf.result_backend = app.conf.broker_url
app.conf.broker_connection_retry_on_startup = True
# Finds django_synerise.tasks (and any app's tasks.py) once Django is set up.
app.autodiscover_tasks()
# A test may give beat a schedule of its own (JSON) and run it in the worker (-B).
if "CELERY_TEST_BEAT_SCHEDULE" in os.environ:
    app.conf.beat_schedule = json.loads(os.environ["CELERY_TEST_BEAT_SCHEDULE"])
