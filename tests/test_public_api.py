"""The public surface: exactly the documented names, with the documented signatures.

A change that breaks one of these tests is a change users can see: it needs a
CHANGELOG entry and, for a rename, the deprecation policy in the README.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

import django_synerise
from django_synerise import conf
from django_synerise.conf import synerise_settings
from django_synerise.exceptions import SyneriseConfigurationError

P = inspect.Parameter
DOCUMENTED = ["__version__", "events", "track", "track_event", "track_many", "track_model"]


def test_all_lists_exactly_the_documented_names():
    assert sorted(django_synerise.__all__) == sorted(DOCUMENTED)
    assert dir(django_synerise) == sorted(DOCUMENTED)


def test_every_public_name_imports():
    # The README's import line.
    from django_synerise import events, track, track_event, track_many, track_model

    assert inspect.ismodule(events)
    assert events is importlib.import_module("django_synerise.events")
    for function in (track, track_event, track_many, track_model):
        assert callable(function)
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


def test_track_signature():
    assert params(django_synerise.track) == [
        ("action", P.POSITIONAL_OR_KEYWORD, "<required>"),
        ("client", P.KEYWORD_ONLY, "<required>"),
        ("params", P.KEYWORD_ONLY, None),
        ("label", P.KEYWORD_ONLY, None),
        ("time", P.KEYWORD_ONLY, None),
    ]


def test_track_event_signature():
    assert params(django_synerise.track_event) == [("event", P.POSITIONAL_OR_KEYWORD, "<required>")]


def test_track_many_signature():
    assert params(django_synerise.track_many) == [("events", P.POSITIONAL_OR_KEYWORD, "<required>")]


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


# Deprecation policy: a renamed SYNERISE key keeps working for one minor release
# with a DeprecationWarning, then is rejected like any unknown key.


@pytest.fixture
def renamed(monkeypatch):
    monkeypatch.setitem(conf.RENAMED_KEYS, "FLUSH_BATCH", "BATCH_SIZE")


def test_renamed_key_warns_once_and_its_value_moves_to_the_new_key(renamed):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with override_settings(SYNERISE={"FLUSH_BATCH": 250}):
            assert synerise_settings.BATCH_SIZE == 250
            assert synerise_settings.MAX_BATCH_BYTES == 1_000_000
            assert "FLUSH_BATCH" not in synerise_settings.user_settings
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1
    assert str(deprecations[0].message) == (
        'SYNERISE["FLUSH_BATCH"] is deprecated and will be removed in the next minor '
        'release; rename it to SYNERISE["BATCH_SIZE"].'
    )


def test_renamed_key_does_not_override_the_new_key(renamed):
    with (
        pytest.warns(DeprecationWarning, match="FLUSH_BATCH"),
        override_settings(SYNERISE={"FLUSH_BATCH": 250, "BATCH_SIZE": 500}),
    ):
        assert synerise_settings.BATCH_SIZE == 500


def test_renamed_value_is_validated_under_the_new_name(renamed):
    with (
        pytest.warns(DeprecationWarning, match="FLUSH_BATCH"),
        override_settings(SYNERISE={"FLUSH_BATCH": 5000}),
        pytest.raises(SyneriseConfigurationError, match=r'SYNERISE\["BATCH_SIZE"\]'),
    ):
        synerise_settings.BATCH_SIZE


def test_current_keys_do_not_warn(renamed):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with override_settings(SYNERISE={"BATCH_SIZE": 250}):
            assert synerise_settings.BATCH_SIZE == 250


def test_a_removed_rename_is_rejected_as_unknown():
    assert "FLUSH_BATCH" not in conf.RENAMED_KEYS
    with (
        override_settings(SYNERISE={"FLUSH_BATCH": 250}),
        pytest.raises(SyneriseConfigurationError, match=r"Unknown key.*FLUSH_BATCH"),
    ):
        synerise_settings.BATCH_SIZE


def test_warnings_as_errors_make_manage_py_check_fail_on_a_renamed_key(renamed):
    # The README's advice: `python -W error::DeprecationWarning manage.py check`.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with (
            pytest.raises(DeprecationWarning, match=r'rename it to SYNERISE\["BATCH_SIZE"\]'),
            override_settings(SYNERISE={"FLUSH_BATCH": 250, "API_KEY": "k"}),
        ):
            call_command("check", tags=["synerise"])
