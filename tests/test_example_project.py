"""The example shop and ``make demo``, run as a newcomer runs them: in subprocesses.

Each test gets a database of its own (a SQLite file, or a fresh PostgreSQL
database when ``DATABASE_URL`` points at PostgreSQL), so the demo's migrate and
rows never touch the suite's test database.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from django_synerise.testing import LocalSynerise

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
MANAGE = EXAMPLE / "manage.py"

pytestmark = [
    pytest.mark.slow,
    # The sdist carries the tests but not the example project.
    pytest.mark.skipif(not MANAGE.exists(), reason="example_project/ is not in this tree"),
]

#: Every action the demo simulates, where Synerise must receive it, and its batch type.
DEMO_ACTIONS = {
    "page.visit": ("/v4/events/batch", "custom"),
    "newsletter.subscribed": ("/v4/events/batch", "custom"),
    "client.register": ("/v4/events/batch", "registered"),
    "client.login": ("/v4/events/batch", "logged-in"),
    "client.logout": ("/v4/events/batch", "logged-out"),
    "client.search": ("/v4/events/batch", "searched"),
    # The shop vocabulary (django_synerise.events builders), cart status included.
    "product.view": ("/v4/events/batch", "product-view"),
    "product.addToFavorite": ("/v4/events/batch", "added-to-favorites"),
    "product.addToCart": ("/v4/events/batch", "added-to-cart"),
    "product.removeFromCart": ("/v4/events/batch", "removed-from-cart"),
    "cart.status": ("/v4/events/batch", "custom"),
    "transaction.charge": ("/v4/transactions/batch", "transaction"),
    "transaction.cancel": ("/v4/events/batch", "cancelled-transaction"),
    # ai-compat, the default AI events API.
    "recommendation.view": ("/v4/events/ai-compat/batch", "recommendation.view"),
    "recommendation.click": ("/v4/events/ai-compat/batch", "recommendation.click"),
    "item.search.click": ("/v4/events/ai-compat/batch", "item.search.click"),
    # Profiles (USER_PROFILES, and the merge at login and sign-up) and the catalog.
    "profile.update": ("/v4/clients/batch", "profile"),
    "profile.merge": ("/v4/clients/batch", "profile"),
    "catalog.item": ("/catalogs/bags/<id>/items/batch", "catalog:1"),
}
#: What the stand-in calls each action of DEMO_ACTIONS (a profile is a profile).
STAND_IN_ACTIONS = {"profile.update": "client.update", "profile.merge": "client.update"}


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for the example project, dropped afterwards."""
    outer = os.environ.get("DATABASE_URL", "")
    if not outer.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'shop.sqlite3'}"
        return
    import psycopg

    name = f"synerise_example_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(outer)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def shop_env(database_url: str) -> dict[str, str]:
    """The environment of a newcomer's shell: no test settings, no Synerise keys."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DJANGO_SETTINGS_MODULE" and not key.startswith("SYNERISE_")
    }
    # Set, even if empty, so that a developer's example_project/.env cannot change them.
    env.update(
        DATABASE_URL=database_url,
        SYNERISE_API_KEY="",
        SYNERISE_TRACKER_KEY="",
        DEBUG="True",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def delivery_table(output: str) -> dict[str, tuple[str, str, int, int]]:
    """The demo's report: action → (endpoint, type, simulated, received)."""
    rows = {}
    for line in output.splitlines():
        match = re.match(r"^\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s*$", line)
        if match and match.group(1) != "total":
            endpoint, event_type, action, simulated, received = match.groups()
            rows[action] = (endpoint, event_type, int(simulated), int(received))
    return rows


def outbox_totals(env: dict[str, str]) -> dict[str, int]:
    result = manage(env, "synerise_outbox", "stats", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["totals"]


def test_demo_delivers_every_simulated_action_to_the_stand_in(shop_env: dict[str, str]) -> None:
    result = manage(shop_env, "demo")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "a local stand-in at http://127.0.0.1:" in result.stdout
    # The shoppers are simulated in process: the demo never claims a server it did not start.
    [simulating] = [line for line in result.stdout.splitlines() if "Simulating" in line]
    assert "in this process" in simulating and "no server listens" in simulating
    table = delivery_table(result.stdout)
    assert set(table) == set(DEMO_ACTIONS)
    for action, (endpoint, event_type) in DEMO_ACTIONS.items():
        got_endpoint, got_type, simulated, received = table[action]
        assert (got_endpoint, got_type) == (endpoint, event_type), action
        assert simulated > 0, action
        assert received == simulated, action
    total = sum(row[2] for row in table.values())
    assert f"All {total} events of this run were delivered" in result.stdout
    # The outbox agrees: nothing pending or dead, and the shop keeps the default
    # RETAIN_SENT = 0, so every accepted row is already deleted.
    totals = outbox_totals(shop_env)
    assert (totals["pending"], totals["dead"], totals["sent"]) == (0, 0, 0)
    # The README shows this report as it is printed.
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("```text\nWhat the local stand-in received", 1)[1].split("```", 1)[0]
    heading, columns, *rows, last = ("What the local stand-in received" + shown).splitlines()
    assert heading in result.stdout
    assert columns in result.stdout
    for row in rows:
        assert row == "  ..." or delivery_table(row), row
        # Each row shown is one this run printed: same endpoint and type for its action.
        for action, (endpoint, event_type, _, _) in delivery_table(row).items():
            assert table[action][:2] == (endpoint, event_type), row
    assert re.fullmatch(r"All \d+ events of this run were delivered, in [\d.]+ s\.", last)


def test_a_second_demo_run_reports_only_its_own_events(shop_env: dict[str, str]) -> None:
    first = manage(shop_env, "demo", "--visitors", "8", "--seed", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    # Events enqueued between runs (a click through `make run`) go out with the next demo.
    enqueue = manage(
        shop_env,
        "shell",
        "-c",
        "import django_synerise; "
        "django_synerise.track('shop.opened', client={'email': 'owner@example.com'})",
    )
    assert enqueue.returncode == 0, enqueue.stderr

    second = manage(shop_env, "demo", "--visitors", "8", "--seed", "1")

    assert second.returncode == 0, second.stdout + second.stderr
    assert "(and 1 events enqueued before this run)" in second.stdout
    assert "shop.opened" not in delivery_table(second.stdout)
    totals = outbox_totals(shop_env)
    assert totals["pending"] == totals["dead"] == 0


def test_demo_with_a_key_sends_to_the_configured_api(shop_env: dict[str, str]) -> None:
    catalogs = {"products": 31}
    with LocalSynerise(
        api_key="workspace-key", tracker_key="tracker-key", catalogs=catalogs
    ) as synerise:
        url = synerise.url
        env = {
            **shop_env,
            "SYNERISE_API_BASE_URL": url,
            "SYNERISE_API_KEY": "workspace-key",
            "SYNERISE_TRACKER_KEY": "tracker-key",
        }
        result = manage(env, "demo", "--visitors", "8")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Synerise: {url} (SYNERISE_API_KEY set)" in result.stdout
    table = delivery_table(result.stdout)
    assert set(table) == set(DEMO_ACTIONS)
    expected = sum(row[2] for row in table.values())
    assert synerise.count == expected
    received: dict[str, int] = {}
    for event in synerise.events:
        received[event["action"]] = received.get(event["action"], 0) + 1
    sent: dict[str, int] = {}
    for action, row in table.items():
        name = STAND_IN_ACTIONS.get(action, action)
        sent[name] = sent.get(name, 0) + row[2]
    assert received == sent
    assert {item["catalogId"] for item in synerise.catalog_items()} == {31}
    # The key never shows in what the demo prints.
    assert "workspace-key" not in result.stdout + result.stderr


@pytest.mark.parametrize("seed", [0, 147])
def test_eight_visitors_do_every_action_whatever_the_seed(
    shop_env: dict[str, str], seed: int
) -> None:
    # With these seeds the random choices once skipped every recommendation click (0)
    # or every search click (147); the first chance of each action is now always taken.
    result = manage(shop_env, "demo", "--visitors", "8", "--seed", str(seed))
    assert result.returncode == 0, result.stdout + result.stderr
    table = delivery_table(result.stdout)
    assert set(table) == set(DEMO_ACTIONS)
    assert all(simulated == received > 0 for _, _, simulated, received in table.values())


def test_demo_exits_non_zero_when_events_are_not_delivered(shop_env: dict[str, str]) -> None:
    with LocalSynerise(api_key="workspace-key", tracker_key="tracker-key") as synerise:
        synerise.inject("500")
        env = {
            **shop_env,
            "SYNERISE_API_BASE_URL": synerise.url,
            "SYNERISE_API_KEY": "workspace-key",
            "SYNERISE_TRACKER_KEY": "tracker-key",
        }
        result = manage(env, "demo", "--visitors", "8")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "events of this run are pending" in result.stderr
    assert "the demo did not deliver everything" in result.stderr
    assert synerise.count == 0
    assert outbox_totals(shop_env)["pending"] > 0


def test_demo_with_an_api_key_but_no_tracker_key_says_what_to_set(
    shop_env: dict[str, str],
) -> None:
    result = manage({**shop_env, "SYNERISE_API_KEY": "workspace-key"}, "demo")

    # It stops before anything runs: the shop's pages use the tracking code,
    # which renders nothing without the key.
    assert result.returncode == 1
    assert "{% synerise_tracking_code %}" in result.stderr
    assert 'Set SYNERISE["TRACKER_KEY"]' in result.stderr
    assert "workspace-key" not in result.stdout + result.stderr


def test_the_example_projects_own_tests_pass(shop_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        env=shop_env,
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b17 passed\b", result.stdout), result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_clicking_through_the_served_shop_reaches_the_stand_in_cli(
    shop_env: dict[str, str],
) -> None:
    """``make run`` plus the stand-in CLI and ``synerise_flush``, as the README describes."""
    assert manage(shop_env, "migrate", "--noinput").returncode == 0
    assert manage(shop_env, "seed_shop").returncode == 0
    stand_in = subprocess.Popen(
        [sys.executable, "-m", "django_synerise.testing", "--port", "0"],
        env=shop_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=shop_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert stand_in.stdout is not None and server.stdout is not None
        stand_in_url = stand_in.stdout.readline().strip()
        assert stand_in_url.startswith("http://127.0.0.1:")
        for line in server.stdout:
            if "Quit the server with" in line:
                break
        else:
            pytest.fail("runserver ended before serving")

        base = f"http://127.0.0.1:{port}"
        # requests' own user agent: an HTTP library is not a bot (EXCLUDE_AUTOMATION is
        # off by default), so this visit counts once the shop has set the tracker cookie.
        browser = requests.Session()
        page = browser.get(f"{base}/products/TEA-001/", timeout=10)
        assert page.status_code == 200
        # Without a tracker key the shop sets the visitor cookie itself.
        assert "_snrs_uuid" in browser.cookies
        correlation = re.search(r'data-synerise-correlation-id="([^"]+)"', page.text)
        assert correlation is not None
        beacon = browser.post(
            f"{base}/synerise/beacon/",
            data=json.dumps(
                {
                    "type": "recommendation.view",
                    "correlationId": correlation.group(1),
                    "items": re.findall(r'data-synerise-item="([^"]+)"', page.text),
                }
            ),
            headers={"Origin": base, "Content-Type": "text/plain;charset=UTF-8"},
            timeout=10,
        )
        assert beacon.status_code == 204

        flush = manage({**shop_env, "SYNERISE_API_BASE_URL": stand_in_url}, "synerise_flush")
        assert flush.returncode == 0, flush.stderr
        # The page visit, the product view, the recommendation view, and the 12
        # seeded products as catalog items.
        assert flush.stdout.startswith("sent 15, retried 0, dead 0"), flush.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
        stand_in.send_signal(signal.SIGINT)
        report, _ = stand_in.communicate(timeout=10)
    assert re.search(r"^v4-batch\s+custom\s+1$", report, re.MULTILINE), report
    assert re.search(r"^v4-batch\s+product-view\s+1$", report, re.MULTILINE), report
    assert re.search(r"^ai-compat-batch\s+recommendation\.view\s+1$", report, re.MULTILINE), report


def test_make_demo_and_run_are_one_command_each() -> None:
    result = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "demo", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Both first set up the virtualenv (the $(STAMP) prerequisite), then run the shop.
    assert any("pip install" in line for line in lines)
    assert ".venv/bin/python example_project/manage.py demo" in lines
    assert ".venv/bin/python example_project/manage.py runserver 127.0.0.1:8000" in lines
