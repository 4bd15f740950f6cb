"""Settings for the test suite. ``DATABASE_URL`` switches SQLite to PostgreSQL or MariaDB."""

from __future__ import annotations

import json
import os

import environ

env = environ.Env()

SECRET_KEY = "tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

DATABASE_URL = env.str(
    "DATABASE_URL", default="sqlite:///" + os.path.join(os.path.dirname(__file__), "test.sqlite3")
)
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"].setdefault("TEST", {})
# One test database per test run (by process id), so that runs side by side
# (the compatibility matrix, a developer's run during CI) never share one.
_RUN = os.environ.get("SYNERISE_TEST_RUN", str(os.getpid()))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so that subprocess workers can share the test database.
    DATABASES["default"]["TEST"]["NAME"] = os.path.join(
        os.path.dirname(__file__), f"test_db_{_RUN}.sqlite3"
    )
else:
    DATABASES["default"]["TEST"]["NAME"] = f"test_{DATABASES['default']['NAME']}_{_RUN}"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    import pymysql

    pymysql.version_info = (2, 2, 7, "final", 0)
    pymysql.install_as_MySQLdb()
    DATABASES["default"].setdefault("OPTIONS", {})["charset"] = "utf8mb4"
    DATABASES["default"]["TEST"]["CHARSET"] = "utf8mb4"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_synerise",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(os.path.dirname(__file__), "templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Subprocess workers started by the tests point at the test's stand-in through these.
SYNERISE = {
    "API_BASE_URL": env.str("SYNERISE_API_BASE_URL", default="http://127.0.0.1:9"),
    "API_KEY": env.str("SYNERISE_API_KEY", default="test-api-key"),
    "TRACKER_KEY": env.str("SYNERISE_TRACKER_KEY", default="test-tracker-key"),
    "RAISE_ERRORS": True,
}
# Subprocess workers (concurrency, soak and Celery tests) get the stand-in's URL, keys
# and their tuning from the test that starts them: JSON merged into SYNERISE.
SYNERISE.update(json.loads(os.environ.get("SYNERISE_TEST_OVERRIDES", "{}")))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django_synerise": {"handlers": ["null"], "level": "DEBUG"}},
}
