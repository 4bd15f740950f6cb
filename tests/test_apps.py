"""The app's start-up: checks registered in ready(), no traceback for a bad SYNERISE.

The subprocess tests run the example shop's ``manage.py`` as a user would, with
a settings module that changes only ``SYNERISE``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.core.checks import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_synerise import checks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"

needs_example = pytest.mark.skipif(
    not (EXAMPLE / "manage.py").exists(), reason="example_project/ is not in this tree"
)


def test_ready_registers_the_checks():
    registered = registry.registry.get_checks(include_deployment_checks=True)
    assert checks.check_settings in registered
    assert checks.check_installation in registered
    assert checks.check_deploy in registered
    assert checks.check_deploy not in registry.registry.get_checks()


def test_an_unknown_key_is_a_check_message_not_a_crash_in_ready():
    config = apps.get_app_config("django_synerise")
    try:
        with override_settings(SYNERISE={"BATCHSIZE": 100}):
            config.ready()  # raised SyneriseConfigurationError before
            with pytest.raises(SystemCheckError) as caught:
                call_command("check")
    finally:
        config.ready()
    assert config.ready_errors == []
    report = str(caught.value)
    assert "synerise.E000" in report
    assert 'Unknown key(s) in SYNERISE: BATCHSIZE. Did you mean "BATCH_SIZE"?' in report
    assert report.count("BATCHSIZE") == 1  # ready()'s error and the check's are one message


def manage(tmp_path: Path, synerise: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``example_project/manage.py ARGS`` with ``SYNERISE = <synerise>`` and its own database."""
    (tmp_path / "usersettings.py").write_text(
        "from shopsite.settings import *  # noqa: F403\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / 'db.sqlite3')!r}}}}}\n"
        f"SYNERISE = {synerise}\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SYNERISE_", "DATABASE_URL"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "usersettings"
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(EXAMPLE), str(ROOT)])
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


@needs_example
@pytest.mark.slow
def test_migrate_and_stats_work_without_keys_and_deploy_check_fails(tmp_path):
    migrate = manage(tmp_path, "{}", "migrate", "--verbosity", "0")
    assert migrate.returncode == 0, migrate.stderr
    assert "synerise.W004" in migrate.stderr and "Traceback" not in migrate.stderr
    stats = manage(tmp_path, "{}", "synerise_outbox", "stats")
    assert stats.returncode == 0, stats.stderr
    deploy = manage(tmp_path, "{}", "check", "--deploy", "--tag", "synerise")
    assert deploy.returncode == 1
    assert "synerise.E001" in deploy.stderr and "Traceback" not in deploy.stderr

    # An event waits in the outbox; flushing without a key says why, exits 1, loses nothing.
    enqueue = manage(
        tmp_path,
        "{}",
        "shell",
        "-c",
        "from django_synerise import track; track('shop.test', client={'customId': '7'})",
    )
    assert enqueue.returncode == 0, enqueue.stderr
    flush = manage(tmp_path, "{}", "synerise_flush")
    assert flush.returncode == 1
    assert 'SYNERISE["API_KEY"] is required to send events' in flush.stderr
    assert "Traceback" not in flush.stderr
    stats = manage(tmp_path, "{}", "synerise_outbox", "stats")
    assert stats.returncode == 0, stats.stderr
    assert re.search(r"^pending +1 ", stats.stdout, re.MULTILINE), stats.stdout


@needs_example
@pytest.mark.slow
def test_an_unknown_key_is_one_check_message_in_a_real_project(tmp_path):
    result = manage(tmp_path, '{"BATCHSIZE": 100}', "migrate", "--verbosity", "0")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "synerise.E000" in result.stderr
    assert 'Did you mean "BATCH_SIZE"?' in result.stderr


# MODEL_EVENTS was removed (hooks are declared with track_model() in AppConfig.ready()):
# a settings file that still has it gets the unknown-key message, never a traceback.
OLD_MODEL_EVENTS = [{"model": "shop.Order", "action": "x.y", "client": "os.getcwd"}]


def test_the_removed_model_events_is_a_check_message_not_a_crash_in_ready():
    config = apps.get_app_config("django_synerise")
    try:
        with override_settings(SYNERISE={"API_KEY": "k", "MODEL_EVENTS": OLD_MODEL_EVENTS}):
            config.ready()
            assert config.ready_errors == []
            with pytest.raises(SystemCheckError) as caught:
                call_command("check")
    finally:
        config.ready()
    assert "synerise.E000" in str(caught.value)
    assert "Unknown key(s) in SYNERISE: MODEL_EVENTS" in str(caught.value)


@needs_example
@pytest.mark.slow
def test_the_removed_model_events_is_one_check_message_in_a_real_project(tmp_path):
    result = manage(tmp_path, repr({"MODEL_EVENTS": OLD_MODEL_EVENTS}), "migrate", "-v", "0")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "synerise.E000" in result.stderr and "MODEL_EVENTS" in result.stderr
