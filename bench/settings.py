"""Django settings of the benchmark processes.

The database comes from ``BENCH_DATABASE_URL`` (set by ``bench.run``), never
from the test settings: the benchmark truncates its outbox table at will.
``BENCH_MIDDLEWARE=1`` adds ``PageVisitMiddleware`` (the real-server latency run
starts one server with it and one without); ``BENCH_PAGE_VISIT_ASYNC_COMMIT=1``
turns on ``PAGE_VISITS["ASYNC_COMMIT"]``, whose page-visit commits return before
the disk flush, to separate the code's cost from the disk's.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

HERE = Path(__file__).resolve().parent

SECRET_KEY = "bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {
    "default": environ.Env.db_url_config(
        os.environ.get(
            "BENCH_DATABASE_URL",
            f"sqlite:///{os.environ.get('BENCH_SQLITE_PATH') or HERE / 'bench.sqlite3'}",
        )
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the latency runs read while a writer commits; the timeout lets
    # parallel writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 60,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_synerise",
    # bench.models.OneColumn, the bare INSERT the middleware is compared with.
    "bench",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
if os.environ.get("BENCH_MIDDLEWARE") == "1":
    MIDDLEWARE.append("django_synerise.middleware.PageVisitMiddleware")

ROOT_URLCONF = "bench.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(HERE / "templates")],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
# Persistent connections, as a production site runs: a page visit then costs an
# INSERT, not a new database connection.
DATABASES["default"]["CONN_MAX_AGE"] = 60

SYNERISE = {
    "API_BASE_URL": os.environ.get("BENCH_SYNERISE_URL", "http://127.0.0.1:9"),
    "API_KEY": "test-api-key",
    "TRACKER_KEY": "test-tracker-key",
    "RETAIN_SENT": int(os.environ.get("BENCH_RETAIN_SENT", "7")),
    "PAGE_VISITS": {
        "ASYNC_COMMIT": os.environ.get("BENCH_PAGE_VISIT_ASYNC_COMMIT") == "1",
        # The default per-address limit stays on (its cost is part of a page
        # visit's); the direct measurement gives each request an address of its
        # own, the test client and the real server, one address for all their
        # requests, run without it (BENCH_PAGE_VISIT_THROTTLE=0).
        "THROTTLE_RATE": None if os.environ.get("BENCH_PAGE_VISIT_THROTTLE") == "0" else "60/min",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django_synerise": {"handlers": ["null"], "level": "INFO", "propagate": False}},
}
