"""The SYNERISE settings dict: defaults, validation, reload under override_settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_synerise import conf
from django_synerise.conf import DEFAULTS, SETTINGS, synerise_settings
from django_synerise.exceptions import SyneriseConfigurationError

ROOT = Path(__file__).resolve().parent.parent


def read(**values):
    with override_settings(SYNERISE=values):
        return {key: getattr(synerise_settings, key) for key in values}


def test_defaults_apply_when_keys_are_absent():
    with override_settings(SYNERISE={}):
        assert synerise_settings.API_BASE_URL == "https://api.synerise.com"
        assert synerise_settings.API_VERSION == "4.4"
        assert synerise_settings.BATCH_SIZE == 1000
        assert synerise_settings.MAX_BATCH_BYTES == 1_000_000
        assert synerise_settings.AUTH == "jwt"
        assert synerise_settings.AI_EVENTS_API == "ai-compat"
        assert synerise_settings.AI_TIMESTAMP_FORMAT == "unix-ms"
        assert synerise_settings.ENABLED is True
        assert synerise_settings.TIMEOUT == (3.05, 10.0)


def test_missing_setting_entirely_uses_defaults(settings):
    del settings.SYNERISE
    assert synerise_settings.API_KEY is None
    assert synerise_settings.BATCH_SIZE == 1000


def test_override_settings_reloads():
    with override_settings(SYNERISE={"BATCH_SIZE": 10}):
        assert synerise_settings.BATCH_SIZE == 10
        with override_settings(SYNERISE={"BATCH_SIZE": 20}):
            assert synerise_settings.BATCH_SIZE == 20
        assert synerise_settings.BATCH_SIZE == 10


def test_unknown_key_is_rejected_with_the_valid_names():
    with (
        override_settings(SYNERISE={"APIKEY": "x"}),
        pytest.raises(SyneriseConfigurationError) as exc,
    ):
        _ = synerise_settings.API_KEY
    message = str(exc.value)
    assert "APIKEY" in message
    assert "API_KEY" in message and "BATCH_SIZE" in message


def test_unknown_attribute_is_rejected():
    with pytest.raises(SyneriseConfigurationError, match="Unknown SYNERISE setting 'NOPE'"):
        _ = synerise_settings.NOPE


def test_configuration_errors_are_improperly_configured_not_synerise_errors():
    from django_synerise.exceptions import SyneriseError

    assert issubclass(SyneriseConfigurationError, ImproperlyConfigured)
    assert not issubclass(SyneriseConfigurationError, SyneriseError)


def test_settings_must_be_a_dict():
    with (
        override_settings(SYNERISE=["API_KEY"]),
        pytest.raises(SyneriseConfigurationError, match="SYNERISE must be a dict"),
    ):
        _ = synerise_settings.API_KEY


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("API_BASE_URL", "api.synerise.com", "must start with https://"),
        ("API_BASE_URL", "", "non-empty string"),
        ("API_KEY", 123, "must be a string"),
        ("AUTH", "oauth", "'jwt', 'basic'"),
        ("AI_EVENTS_API", "v2", "'events-v1', 'ai-compat'"),
        ("AI_TIMESTAMP_FORMAT", "seconds", "'unix-ms', 'iso8601'"),
        ("BEACON_MODE", "proxy", "'first-party', 'direct'"),
        ("TIMEOUT", (1, 2, 3), "(connect, read) pair"),
        ("TIMEOUT", -1, "(connect, read) pair"),
        ("ENABLED", "yes", "True or False"),
        ("BATCH_SIZE", 1001, "at most 1000"),
        ("BATCH_SIZE", 0, ">= 1"),
        ("BATCH_SIZE", 10.5, "an integer"),
        ("MAX_BATCH_BYTES", 2_000_000, "at most 1000000"),
        ("MAX_ATTEMPTS", "3", "an integer"),
        ("RETRY_BACKOFF_BASE", -1, ">= 0"),
        ("LEASE_SECONDS", 0, "> 0"),
        ("RETAIN_SENT", True, "a number"),
        ("USER_IDENTIFIERS", {"phone": "phone"}, "Synerise identifiers"),
        ("UUID_NAMESPACE", "not-a-uuid", "a UUID"),
        ("BEACON_ALLOWED_ORIGINS", "https://a", "list of strings"),
        ("PAGE_VISITS", {"METHOD": ["GET"]}, "METHOD"),
        ("PAGE_VISITS", {"STATUS_CODES": ["200"]}, "STATUS_CODES"),
        ("RESPECT_DNT", 1, "RESPECT_DNT"),
        ("RESPECT_GPC", "yes", "RESPECT_GPC"),
        ("CONSENT", 42, "CONSENT"),
        ("AUTH_EVENTS", {"LOGGED_IN": "on"}, "LOGGED_IN"),
        ("PAGE_VISITS", {"EXCLUDE_AUTOMATION": "yes"}, "EXCLUDE_AUTOMATION"),
        ("PAGE_VISITS", {"ASYNC_COMMIT": "off"}, "ASYNC_COMMIT"),
        ("PAGE_VISITS", {"WRITE_AFTER_RESPONSE": 1}, "WRITE_AFTER_RESPONSE"),
        ("API_VERSION", "v4.4", "digits and dots"),
        ("API_VERSION", "4.", "digits and dots"),
        ("API_VERSION", "4..4", "digits and dots"),
        ("API_VERSION", ".4", "digits and dots"),
        ("API_VERSION", "4,4", "digits and dots"),
        ("API_VERSION", "4.4\n", "digits and dots"),
        ("API_VERSION", "٤.٤", "digits and dots"),  # Arabic-Indic digits
        ("API_VERSION", "", "digits and dots"),
        ("API_VERSION", 4.4, "digits and dots"),
        ("API_VERSION", None, "digits and dots"),
        ("BEACON_THROTTLE_RATE", "lots", "must look like"),
        ("BEACON_THROTTLE_RATE", "120", "must look like"),
        ("BEACON_THROTTLE_RATE", "120/", "must look like"),
        ("BEACON_THROTTLE_RATE", "/min", "must look like"),
        ("BEACON_THROTTLE_RATE", "120/week", "must look like"),
        ("BEACON_THROTTLE_RATE", "120/min/2", "must look like"),
        ("BEACON_THROTTLE_RATE", "-1/min", "must look like"),
        ("BEACON_THROTTLE_RATE", "1.5/min", "must look like"),
        ("BEACON_THROTTLE_RATE", 120, "must look like"),
        ("BEACON_THROTTLE_RATE", None, "must look like"),
    ],
)
def test_wrong_values_name_the_key(key, value, fragment):
    with override_settings(SYNERISE={key: value}), pytest.raises(SyneriseConfigurationError) as exc:
        getattr(synerise_settings, key)
    message = str(exc.value)
    assert key in message
    assert fragment in message
    assert "SYNERISE" in message


@pytest.mark.parametrize("version", ["4", "4.4", "10.0.1"])
def test_api_version_of_digits_and_dots(version):
    assert read(API_VERSION=version)["API_VERSION"] == version


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("120/min", (120, 60)),
        ("5/hours", (5, 3600)),
        ("100/minutes", (100, 60)),
        ("10/s", (10, 1)),
        ("3/seconds", (3, 1)),
        ("1/d", (1, 86400)),
        ("0/day", (0, 86400)),
        (" 7 / hour ", (7, 3600)),
    ],
)
def test_beacon_throttle_rate_takes_every_rate_drf_reads(rate, parsed):
    assert read(BEACON_THROTTLE_RATE=rate)["BEACON_THROTTLE_RATE"] == rate
    assert conf.parse_throttle_rate("key", rate) == parsed


def test_exclude_automation_is_off_by_default():
    assert read(PAGE_VISITS={})["PAGE_VISITS"]["EXCLUDE_AUTOMATION"] is False
    assert read(PAGE_VISITS={"EXCLUDE_AUTOMATION": True})["PAGE_VISITS"]["EXCLUDE_AUTOMATION"]


def test_async_commit_is_off_by_default():
    assert read(PAGE_VISITS={})["PAGE_VISITS"]["ASYNC_COMMIT"] is False
    assert read(PAGE_VISITS={"ASYNC_COMMIT": True})["PAGE_VISITS"]["ASYNC_COMMIT"] is True


def test_timeout_single_number_sets_both():
    assert read(TIMEOUT=5)["TIMEOUT"] == (5.0, 5.0)


def test_base_url_trailing_slash_is_removed():
    assert read(API_BASE_URL="https://api.azu.synerise.com/")["API_BASE_URL"] == (
        "https://api.azu.synerise.com"
    )


def test_nested_dicts_merge_with_defaults():
    values = read(PAGE_VISITS={"EXCLUDE_BOTS": False})["PAGE_VISITS"]
    assert values["EXCLUDE_BOTS"] is False
    assert values["METHODS"] == ["GET"]
    assert values["STATUS_CODES"] == [200]


def test_nested_defaults_are_not_shared_between_reads():
    first = read(PAGE_VISITS={})["PAGE_VISITS"]
    first["METHODS"].append("POST")
    assert read(PAGE_VISITS={})["PAGE_VISITS"]["METHODS"] == ["GET"]


def test_validate_all_covers_every_key():
    with override_settings(SYNERISE={}):
        synerise_settings.validate_all()
    assert set(DEFAULTS) >= {"API_KEY", "TRACKER_KEY", "BATCH_SIZE", "MAX_BATCH_BYTES"}


def test_import_callable_reports_bad_paths():
    with pytest.raises(SyneriseConfigurationError, match="CLIENT_RESOLVER"):
        synerise_settings.import_callable("CLIENT_RESOLVER", "no.such.module.func")
    assert synerise_settings.import_callable("CLIENT_RESOLVER", None) is None
    assert synerise_settings.import_callable("CLIENT_RESOLVER", "os.path.join") is not None


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("key", ["LEASE_SECONDS", "RETRY_BACKOFF_BASE", "RETAIN_SENT"])
def test_non_finite_numbers_are_refused(key, value):
    with override_settings(SYNERISE={key: value}), pytest.raises(SyneriseConfigurationError) as exc:
        getattr(synerise_settings, key)
    assert key in str(exc.value)


def test_every_setting_is_one_row_with_a_default_that_passes_its_rule_and_a_doc():
    tables = [("", SETTINGS)] + [
        (f"{name}.", row.table) for name, row in SETTINGS.items() if row.table is not None
    ]
    for prefix, table in tables:
        for name, row in table.items():
            assert row.doc and row.accepts, prefix + name
            assert "\n" not in row.doc, f"{prefix}{name}: the doc is one line"
            row.rule(conf.label(name), row.default)
    assert {name: row.default for name, row in SETTINGS.items()} == DEFAULTS
    assert set(DEFAULTS["PAGE_VISITS"]) == set(conf.PAGE_VISIT_SETTINGS)


def test_a_new_row_is_a_setting(monkeypatch, settings):
    # Adding a setting is one row: reading, validation and the page follow from it.
    row = conf.Setting(5, conf.Number(minimum=1, integer=True), "Widgets per gadget.")
    table = {**SETTINGS, "WIDGETS": row}
    fresh = conf.SyneriseSettings(table)
    assert fresh.WIDGETS == 5
    settings.SYNERISE = {"WIDGETS": 0}
    fresh.reload()
    with pytest.raises(SyneriseConfigurationError, match=r'SYNERISE\["WIDGETS"\] must be >= 1'):
        _ = fresh.WIDGETS
    monkeypatch.setitem(conf.SECTIONS["Producers"], "WIDGETS", row)
    assert "| `WIDGETS` | `5` | integer >= 1 | Widgets per gadget. |" in conf.render_reference()


def test_unknown_keys_suggest_the_closest_name():
    with (
        override_settings(SYNERISE={"BATCHSIZE": 10}),
        pytest.raises(SyneriseConfigurationError) as exc,
    ):
        _ = synerise_settings.BATCH_SIZE
    assert 'Unknown key(s) in SYNERISE: BATCHSIZE. Did you mean "BATCH_SIZE"?' in str(exc.value)
    with pytest.raises(SyneriseConfigurationError, match='Did you mean "API_KEY"'):
        _ = synerise_settings.API_KE


def test_unknown_nested_key_lists_the_valid_ones():
    with (
        override_settings(SYNERISE={"AUTH_EVENTS": {"LOGIN": True}}),
        pytest.raises(SyneriseConfigurationError) as exc,
    ):
        _ = synerise_settings.AUTH_EVENTS
    assert 'Unknown key(s) in SYNERISE["AUTH_EVENTS"]: LOGIN.' in str(exc.value)
    assert "LOGGED_IN, LOGGED_OUT, REGISTERED" in str(exc.value)


def test_the_configuration_page_is_generated_from_the_table():
    # After adding a row: python -m django_synerise.conf docs/configuration.md
    page = ROOT / "docs" / "configuration.md"
    assert page.read_text(encoding="utf-8") == conf.render_reference(), (
        "docs/configuration.md is out of date: run "
        "`python -m django_synerise.conf docs/configuration.md`"
    )
    for name in SETTINGS:
        assert f"| `{name}` |" in page.read_text(encoding="utf-8")


def test_the_module_writes_the_page(tmp_path):
    target = tmp_path / "configuration.md"
    result = subprocess.run(
        [sys.executable, "-m", "django_synerise.conf", str(target)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert target.read_text(encoding="utf-8") == conf.render_reference()


def test_resets_run_after_the_settings_reload_for_the_settings_they_name(monkeypatch):
    monkeypatch.setattr(conf, "_resets", {})
    seen: list[tuple[str, int]] = []

    def on_synerise():
        seen.append(("synerise", synerise_settings.BATCH_SIZE))

    def on_anything():
        seen.append(("any", 0))

    conf.on_setting_changed(on_synerise)
    conf.on_setting_changed(on_synerise)  # registering again replaces it
    conf.on_setting_changed(on_anything, settings=None)
    with override_settings(SYNERISE={"BATCH_SIZE": 7}):
        assert seen == [("synerise", 7), ("any", 0)]
    seen.clear()
    with override_settings(USE_TZ=False):
        assert seen == [("any", 0)]


def test_bound_methods_register_apart():
    first: dict[str, int] = {"a": 1}
    second: dict[str, int] = {"b": 2}
    before = dict(conf._resets)
    try:
        conf.on_setting_changed(first.clear, settings=["USE_TZ"])
        conf.on_setting_changed(second.clear, settings=["USE_TZ"])
        with override_settings(USE_TZ=False):
            assert first == {} and second == {}
    finally:
        conf._resets.clear()
        conf._resets.update(before)


def test_missing_credentials_is_one_rule():
    assert conf.missing_credentials("jwt", None, None) == ["API_KEY"]
    assert conf.missing_credentials("jwt", "key", None) == []
    assert conf.missing_credentials("basic", "key", None) == ["WORKSPACE_GUID"]
    assert conf.missing_credentials("basic", "", "") == ["WORKSPACE_GUID", "API_KEY"]
    message = conf.credentials_message("basic", ["WORKSPACE_GUID", "API_KEY"])
    assert 'SYNERISE["WORKSPACE_GUID"] and SYNERISE["API_KEY"] are required' in message
    assert message.endswith(
        'Set SYNERISE = {"AUTH": "basic", "WORKSPACE_GUID": ..., "API_KEY": ...} in your '
        "Django settings."
    )


def test_the_client_factory_uses_the_credentials_rule():
    from django_synerise.factory import build_client

    with (
        override_settings(SYNERISE={"API_KEY": None}),
        pytest.raises(SyneriseConfigurationError) as exc,
    ):
        build_client()
    assert str(exc.value) == conf.credentials_message("jwt", ["API_KEY"])


@pytest.mark.parametrize("key", ["API_KEY", "TRACKER_KEY"])
def test_a_malformed_secret_is_named_but_never_echoed(key):
    """Before: ``API_KEY=("...",)`` (a stray comma) printed the key in the error."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    secret = "sk-live-0123456789abcdef"
    with override_settings(SYNERISE={key: (secret,)}):
        synerise_settings.reload()
        with pytest.raises(SyneriseConfigurationError) as raised:
            getattr(synerise_settings, key)
        assert key in str(raised.value) and "tuple" in str(raised.value)
        assert secret not in str(raised.value)
        with pytest.raises(SystemCheckError) as failed:
            call_command("check")
        assert secret not in str(failed.value)


def test_the_limit_settings_read_synerise_limits_from_the_endpoint_table(monkeypatch):
    from django_synerise import endpoints

    for key, limit in endpoints.setting_limits().items():
        with (
            override_settings(SYNERISE={key: limit + 1}),
            pytest.raises(SyneriseConfigurationError, match=f"must be at most {limit}"),
        ):
            getattr(synerise_settings, key)
    # A row that learns a limit caps its setting, with no edit here.
    monkeypatch.setattr(
        endpoints,
        "TRANSACTIONS",
        endpoints.Endpoint(
            name="transaction",
            label="transactions",
            path="/v4/transactions/batch",
            items_setting="TRANSACTION_BATCH_SIZE",
            max_items=50,
        ),
    )
    monkeypatch.setitem(endpoints.ENDPOINTS, "transaction", endpoints.TRANSACTIONS)
    with (
        override_settings(SYNERISE={"TRANSACTION_BATCH_SIZE": 51}),
        pytest.raises(SyneriseConfigurationError, match="must be at most 50"),
    ):
        _ = synerise_settings.TRANSACTION_BATCH_SIZE
