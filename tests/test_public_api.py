"""The public surface: exactly the documented names, with the documented signatures.

A change that breaks one of these tests is a change users can see: it needs a
CHANGELOG entry and, for a rename, the deprecation policy in the README.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import django_synerise

P = inspect.Parameter
DOCUMENTED = [
    "__version__",
    "atrack",
    "atrack_event",
    "atrack_many",
    "events",
    "track",
    "track_event",
    "track_many",
    "track_model",
    "track_profile",
    "track_catalog",
]


def test_all_lists_exactly_the_documented_names():
    assert sorted(django_synerise.__all__) == sorted(DOCUMENTED)
    assert dir(django_synerise) == sorted(DOCUMENTED)


def test_every_public_name_imports():
    # The README's import line.
    from django_synerise import (
        atrack,
        atrack_event,
        atrack_many,
        events,
        track,
        track_event,
        track_many,
        track_model,
    )

    assert inspect.ismodule(events)
    assert events is importlib.import_module("django_synerise.events")
    for function in (track, track_event, track_many, track_model):
        assert callable(function)
        assert function.__doc__, f"{function.__name__} has no docstring"
    for function in (atrack, atrack_event, atrack_many):
        assert inspect.iscoroutinefunction(function)
        assert function.__doc__, f"{function.__name__} has no docstring"
    for name in django_synerise.__all__:
        assert getattr(django_synerise, name) is not None


def test_star_import_gives_the_public_names_only():
    namespace: dict[str, object] = {}
    exec("from django_synerise import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(DOCUMENTED)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'enqueue'"):
        django_synerise.enqueue
    with pytest.raises(ImportError):
        exec("from django_synerise import tracking_internals", {})


def test_version_comes_from_the_installed_metadata():
    assert django_synerise.__version__ == importlib.metadata.version("django-synerise")


def test_importing_the_package_loads_no_django_models():
    # Settings may import the package (e.g. for __version__) before apps are ready.
    code = (
        "import sys, django_synerise; "
        "loaded = sorted(m for m in sys.modules if m.startswith('django_synerise.')); "
        "print(loaded); "
        "assert 'django.db.models' not in sys.modules, 'django.db.models imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
        cwd=Path(django_synerise.__file__).parent.parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_package_ships_py_typed():
    assert (Path(django_synerise.__file__).parent / "py.typed").is_file()


def params(function):
    return [
        (p.name, p.kind, p.default if p.default is not P.empty else "<required>")
        for p in inspect.signature(function).parameters.values()
    ]


@pytest.mark.parametrize("name", ["track", "atrack"])
def test_track_signature(name):
    assert params(getattr(django_synerise, name)) == [
        ("action", P.POSITIONAL_OR_KEYWORD, "<required>"),
        ("client", P.KEYWORD_ONLY, None),
        ("params", P.KEYWORD_ONLY, None),
        ("label", P.KEYWORD_ONLY, None),
        ("time", P.KEYWORD_ONLY, None),
        ("request", P.KEYWORD_ONLY, None),
    ]


@pytest.mark.parametrize("name", ["track_event", "atrack_event"])
def test_track_event_signature(name):
    assert params(getattr(django_synerise, name)) == [
        ("event", P.POSITIONAL_OR_KEYWORD, "<required>"),
        ("request", P.KEYWORD_ONLY, None),
    ]


@pytest.mark.parametrize("name", ["track_many", "atrack_many"])
def test_track_many_signature(name):
    assert params(getattr(django_synerise, name)) == [
        ("events", P.POSITIONAL_OR_KEYWORD, "<required>"),
        ("request", P.KEYWORD_ONLY, None),
    ]


def test_track_model_signature():
    assert params(django_synerise.track_model) == [
        ("model", P.POSITIONAL_OR_KEYWORD, None),
        ("action", P.KEYWORD_ONLY, None),
        ("event_type", P.KEYWORD_ONLY, None),
        ("on", P.KEYWORD_ONLY, ("created",)),
        ("client", P.KEYWORD_ONLY, None),
        ("params", P.KEYWORD_ONLY, None),
        ("when", P.KEYWORD_ONLY, None),
        ("transaction", P.KEYWORD_ONLY, None),
    ]


def test_events_module_exports_the_builders_the_readme_uses():
    from django_synerise import events

    for name in ("CustomEvent", "DedicatedEvent", "Transaction", "AIEvent", "page_visit"):
        assert name in events.__all__
        assert callable(getattr(events, name))
