"""Settings of the example shop, read from the environment with django-environ.

Every variable is optional (see ``.env.example``); a ``.env`` file next to
``manage.py`` is read when present. Without ``SYNERISE_API_KEY`` the shop is
wired to the package's local Synerise stand-in instead of the real API: run
``python -m django_synerise.testing --port 8089`` beside it, or ``manage.py demo``,
which starts one by itself.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env.str("SECRET_KEY", default="example-shop-not-secret-change-me")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",  # the beacon endpoint is a DRF view
    "django_synerise",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Sets the _snrs_uuid cookie when Synerise's JS tracker is not loaded (see its docstring).
    "shop.middleware.LocalVisitorCookieMiddleware",
    # After AuthenticationMiddleware: a page visit carries the logged-in user's identifiers.
    "django_synerise.middleware.PageVisitMiddleware",
]

ROOT_URLCONF = "shopsite.urls"
WSGI_APPLICATION = "shopsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.shop",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets runserver and a `synerise_flush --loop` worker share the file, and
    # makes each commit cheap; IMMEDIATE avoids "database is locked" between writers.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        transaction_mode="IMMEDIATE",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "shop:index"
LOGOUT_REDIRECT_URL = "shop:index"

# The workspace JWT is cached here and shared by every process that flushes.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# -- Synerise -------------------------------------------------------------------------

#: True when no API key is configured: events go to a local stand-in, not to Synerise.
SYNERISE_STAND_IN = not env.str("SYNERISE_API_KEY", default="")

#: Port of the stand-in started with ``python -m django_synerise.testing --port 8089``.
STAND_IN_URL = "http://127.0.0.1:8089"

SYNERISE = {
    "API_BASE_URL": env.str(
        "SYNERISE_API_BASE_URL",
        default=STAND_IN_URL if SYNERISE_STAND_IN else "https://api.synerise.com",
    ),
    # The stand-in accepts these two keys (its defaults); Synerise accepts only yours.
    "API_KEY": env.str("SYNERISE_API_KEY", default="") or "test-api-key",
    "TRACKER_KEY": env.str("SYNERISE_TRACKER_KEY", default="")
    or ("test-tracker-key" if SYNERISE_STAND_IN else None),
    # While developing, a tracking bug should fail loudly rather than be logged.
    "RAISE_ERRORS": DEBUG,
    # Every record passes through this before it is written (drops staff users' events).
    "BEFORE_WRITE": "shop.synerise.before_write",
    # Customers' names and e-mails kept up to date in their Synerise profiles.
    "USER_PROFILES": True,
}

#: The Synerise catalog the shop's products are sent to (by name; its id is looked up).
SHOP_CATALOG = env.str("SYNERISE_CATALOG", default="products")

#: Currency of every price in the shop (ISO 4217).
SHOP_CURRENCY = "EUR"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_synerise": {"handlers": ["console"], "level": "WARNING"}},
}
