"""Every code sample of README.md and docs/*.md, exercised.

Each fenced block is preceded by ``<!-- test: NAME -->`` naming the sample
(tests/docs_samples.py fetches them by name); unmarked blocks must be ``text``
(program output). Samples of a module's own feature may be tested next to that
module's tests; the rest are tested here. Python
samples are executed: in this suite's Django project, in the example shop (a
subprocess with its own database, for samples about the shop's models), or in a
brand-new ``django-admin startproject`` (the "add it to an existing project"
steps). Events the samples record are flushed to the local stand-in, which
validates them like the real API. Shell, cron and service samples are parsed by
the commands they call, and run where they can be.
"""

from __future__ import annotations

import ast
import configparser
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import types
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.management import call_command, load_command_class
from django.template import Context, Template
from django.test import RequestFactory, override_settings
from django.urls import include, path

from django_synerise import track
from django_synerise.checks import check_settings
from django_synerise.conf import (
    AUTH_EVENT_DEFAULTS,
    DEFAULTS,
    PAGE_VISIT_DEFAULTS,
    synerise_settings,
)
from django_synerise.identity import get_client
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from tests import docs_samples
from tests.docs_samples import ROOT, blocks, page_of, run_sample, sample

EXAMPLE = ROOT / "example_project"
VISITOR = "0f8fad5b-d9cb-469f-a165-70867728950e"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"

# The sdist carries the tests and the docs, not the example project or the Makefile.
needs_example = pytest.mark.skipif(
    not (EXAMPLE / "manage.py").exists() or not (ROOT / "Makefile").exists(),
    reason="example_project/ and the Makefile are not in this tree",
)


def url_module(monkeypatch: pytest.MonkeyPatch, *patterns: Any) -> str:
    """A URLconf module holding ``patterns`` (plus the beacon endpoint)."""
    name = f"readme_urls_{uuid.uuid4().hex[:8]}"
    module = types.ModuleType(name)
    module.urlpatterns = [*patterns, path("synerise/", include("django_synerise.urls"))]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return name


def with_page_visits() -> list[str]:
    return [*settings.MIDDLEWARE, "django_synerise.middleware.PageVisitMiddleware"]


def bodies(action: str) -> list[dict[str, Any]]:
    return [row.body for row in OutboxEvent.objects.filter(action=action).order_by("id")]


def flush_to(stand_in: LocalSynerise) -> None:
    """Deliver the outbox; every row must be accepted by the strict stand-in."""
    before, rows = stand_in.count, OutboxEvent.objects.count()
    call_command("synerise_flush", stdout=io.StringIO())
    # Accepted rows are deleted at once (RETAIN_SENT = 0): anything left was refused.
    assert not OutboxEvent.objects.exists(), list(
        OutboxEvent.objects.values_list("action", "status", "last_error")
    )
    assert stand_in.count - before == rows


# -- every block of every page, accounted for -----------------------------------------


def _names_in_tests() -> set[str]:
    """String literals of the test modules that fetch samples (tests/docs_samples.py)."""
    names: set[str] = set()
    for module in (ROOT / "tests").rglob("*.py"):
        source = module.read_text(encoding="utf-8")
        if module.name == "docs_samples.py" or "docs_samples" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
    return names


def test_every_block_is_marked_and_output_only_otherwise() -> None:
    unmarked = [b.where for b in blocks() if b.name is None and b.language != "text"]
    assert unmarked == [], f"fenced blocks without <!-- test: NAME --> before them: {unmarked}"


def test_sample_names_are_unique_across_pages() -> None:
    seen: dict[str, str] = {}
    twice = []
    for block in blocks():
        if block.name is None:
            continue
        if block.name in seen:
            twice.append(f"{block.name}: {seen[block.name]} and {block.where}")
        seen[block.name] = block.where
    assert twice == []


def test_every_marked_block_is_used_by_a_test() -> None:
    used = _names_in_tests()
    unused = [f"{b.name} ({b.where})" for b in blocks() if b.name and b.name not in used]
    assert unused == [], f"no test names these samples: {unused}"


def test_the_checks_above_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unused = f"unused-{uuid.uuid4().hex[:8]}"  # built here, so no test names it
    page = tmp_path / "page.md"
    page.write_text(
        f"<!-- test: {unused} -->\n```python\nx = 1\n```\n\n"
        "```python\ny = 2\n```\n\n<!-- test: quickstart -->\n```bash\nmake demo\n```\n"
        "\n```text\noutput\n```\n"
    )
    real_pages = docs_samples.pages()
    monkeypatch.setattr(docs_samples, "pages", lambda: [*real_pages, page])
    docs_samples.blocks.cache_clear()
    try:
        with pytest.raises(AssertionError, match=r"page\.md:6"):
            test_every_block_is_marked_and_output_only_otherwise()
        with pytest.raises(AssertionError, match=r"quickstart: README\.md"):
            test_sample_names_are_unique_across_pages()
        with pytest.raises(AssertionError, match=unused):
            test_every_marked_block_is_used_by_a_test()
        with pytest.raises(LookupError, match="expected exactly one"):
            sample("quickstart")
    finally:
        monkeypatch.undo()
        docs_samples.blocks.cache_clear()


def test_python_samples_compile_and_are_complete() -> None:
    python = [block for block in blocks() if block.language == "python"]
    assert len(python) >= 20
    for block in python:
        compile(block.code, block.where, "exec")
        assert "..." not in block.code, f"{block.where} has a placeholder"


def test_the_readme_stays_a_short_front_door() -> None:
    """At most 250 lines: each topic's detail lives in its docs/ page."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move detail into docs/"


def test_the_install_and_configure_steps_are_under_20_lines() -> None:
    lines = sample("startproject-settings").splitlines() + sample("startproject-urls").splitlines()
    assert len([line for line in lines if line.strip()]) < 20


# -- Configuration table ---------------------------------------------------------------


def _table_defaults() -> dict[str, str]:
    rows = {}
    for line in (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines():
        found = re.match(r"^\| `([A-Z_]+(?:\[\"[A-Z_]+\"\])?)` \| `([^`]*)` \|", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def test_the_configuration_table_lists_every_setting_with_its_default() -> None:
    expected: dict[str, Any] = {}
    for key, value in DEFAULTS.items():
        nested = {"PAGE_VISITS": PAGE_VISIT_DEFAULTS, "AUTH_EVENTS": AUTH_EVENT_DEFAULTS}.get(key)
        if nested is None:
            expected[key] = value
        else:
            expected.update({f'{key}["{sub}"]': default for sub, default in nested.items()})
    table = _table_defaults()

    assert set(table) == set(expected)
    for key, text in table.items():
        assert ast.literal_eval(text) == expected[key], key


def test_the_settings_for_tests_sample_is_valid() -> None:
    ns = run_sample("settings-for-tests")
    with override_settings(SYNERISE=ns["SYNERISE"]):
        synerise_settings.validate_all()
        assert check_settings() == []
        assert synerise_settings.RAISE_ERRORS is True


# -- Tracking events -------------------------------------------------------------------


@pytest.mark.django_db
def test_custom_event_sample(synerise_stand_in: LocalSynerise) -> None:
    run_sample("custom-event")

    [body] = bodies("newsletter.subscribed")
    assert body["client"] == {"email": "ada@example.com"}
    assert body["params"] == {"source": "footer"}
    flush_to(synerise_stand_in)
    assert synerise_stand_in.summary() == {"v4-batch": {"custom": 1}}


@pytest.mark.django_db
def test_dedicated_event_sample(synerise_stand_in: LocalSynerise) -> None:
    run_sample("dedicated-event")

    [body] = bodies("product.addToFavorite")
    assert body["type"] == "added-to-favorites" and "action" not in body
    assert body["params"] == {"sku": "MUG-001"}
    flush_to(synerise_stand_in)


@pytest.mark.django_db
def test_transaction_sample(synerise_stand_in: LocalSynerise) -> None:
    run_sample("transaction")

    [body] = bodies("transaction.charge")
    assert body["orderId"] == "1042"
    assert body["revenue"] == {"amount": 25.0, "currency": "EUR"}
    assert body["products"][0]["finalUnitPrice"] == {"amount": 12.5, "currency": "EUR"}
    assert body["paymentInfo"] == {"method": "CASH_ON_DELIVERY"}
    flush_to(synerise_stand_in)
    assert synerise_stand_in.summary() == {"transactions-batch": {"transaction": 1}}


@pytest.mark.django_db
def test_track_many_sample(synerise_stand_in: LocalSynerise) -> None:
    run_sample("track-many")

    assert [body["params"]["question"] for body in bodies("quiz.answered")] == [1, 2, 3]
    flush_to(synerise_stand_in)


@pytest.mark.django_db
def test_view_client_sample() -> None:
    share = run_sample("view-client")["share"]
    factory = RequestFactory()

    anonymous = factory.post("/share/")
    anonymous.user = AnonymousUser()
    assert share(anonymous, "MUG-001").status_code == 204
    assert not OutboxEvent.objects.exists()

    visitor = factory.post("/share/", HTTP_COOKIE=f"_snrs_uuid={VISITOR}")
    visitor.user = User.objects.create_user("ada", "ada@example.com")
    assert share(visitor, "MUG-001").status_code == 204
    [body] = bodies("product.shared")
    # A logged-in user is sent by their identifiers alone, not with the browser's uuid.
    assert body["client"] == {"customId": str(visitor.user.pk), "email": "ada@example.com"}
    assert body["params"] == {"sku": "MUG-001"}


@pytest.mark.django_db
def test_client_resolver_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = run_sample("client-resolver", {"__name__": "myproject.synerise"})
    module = types.ModuleType("myproject.synerise")
    module.client_for = ns["client_for"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "myproject", types.ModuleType("myproject"))
    monkeypatch.setitem(sys.modules, "myproject.synerise", module)
    # The dotted path exactly as the docs give it.
    assert 'SYNERISE["CLIENT_RESOLVER"] = "myproject.synerise.client_for"' in page_of(
        "client-resolver"
    )
    request = RequestFactory().get("/", HTTP_COOKIE=f"_snrs_uuid={VISITOR}")

    with override_settings(
        SYNERISE={**settings.SYNERISE, "CLIENT_RESOLVER": "myproject.synerise.client_for"}
    ):
        request.user = AnonymousUser()
        assert get_client(request) is None
        request.user = User.objects.create_user("ada")
        assert get_client(request) == {"customId": f"account-{request.user.pk}"}


@pytest.mark.django_db
def test_page_title_sample(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    about = run_sample("page-title")["about"]
    urls = url_module(monkeypatch, path("about/", about))

    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=with_page_visits()):
        client.cookies["_snrs_uuid"] = VISITOR
        response = client.get("/about/", HTTP_USER_AGENT=BROWSER)

    assert response.status_code == 200
    [body] = bodies("page.visit")
    assert body["params"]["title"] == "About us"
    assert body["params"]["path"] == "/about/"


@pytest.mark.django_db
def test_page_visits_settings_sample(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = run_sample("page-visits-settings")
    page = run_sample("page-title")["about"]
    urls = url_module(monkeypatch, path("about/", page), path("api/about/", page))
    module = types.ModuleType("myproject.synerise")
    module.page_params = ns["page_params"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "myproject", types.ModuleType("myproject"))
    monkeypatch.setitem(sys.modules, "myproject.synerise", module)
    client.cookies["_snrs_uuid"] = VISITOR
    # The suite's own templates use the tracking code, which needs a tracker key (E003).
    as_callable = {
        **ns["SYNERISE"],
        "TRACKER_KEY": settings.SYNERISE["TRACKER_KEY"],
        "RAISE_ERRORS": True,
    }
    as_path = {
        **as_callable,
        "PAGE_VISITS": {**as_callable["PAGE_VISITS"], "PARAMS": "myproject.synerise.page_params"},
    }

    for synerise in (as_callable, as_path):
        OutboxEvent.objects.all().delete()
        with override_settings(SYNERISE=synerise, ROOT_URLCONF=urls, MIDDLEWARE=with_page_visits()):
            assert check_settings() == []
            client.get("/about/", HTTP_USER_AGENT=BROWSER)
            client.get("/api/about/", HTTP_USER_AGENT=BROWSER)  # EXCLUDE_PATHS
            client.get("/about/", HTTP_USER_AGENT=BROWSER, HTTP_DNT="1")  # RESPECT_DNT

        [body] = bodies("page.visit")
        assert body["params"]["path"] == "/about/"
        assert body["params"]["language"] == "en"


@pytest.mark.django_db
def test_registration_sample(
    client: Any, monkeypatch: pytest.MonkeyPatch, synerise_stand_in: LocalSynerise
) -> None:
    signup = run_sample("registration")["signup"]
    urls = url_module(monkeypatch, path("signup/", signup))
    client.cookies["_snrs_uuid"] = VISITOR

    with override_settings(ROOT_URLCONF=urls):
        response = client.post(
            "/signup/",
            {"username": "ada", "password1": "correct-horse-9", "password2": "correct-horse-9"},
        )

    assert response.status_code == 302
    user = User.objects.get(username="ada")
    expected_client = {"uuid": VISITOR, "customId": str(user.pk)}
    assert [(row.action, row.body["client"]) for row in OutboxEvent.objects.order_by("id")] == [
        ("client.register", expected_client),
        ("client.login", expected_client),
    ]
    flush_to(synerise_stand_in)


# -- Template tags ---------------------------------------------------------------------


def _render(name: str, monkeypatch: pytest.MonkeyPatch, **context: Any) -> str:
    urls = url_module(monkeypatch)
    with override_settings(ROOT_URLCONF=urls):
        return Template(sample(name)).render(Context(context))


def test_recommendation_template_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [
        types.SimpleNamespace(sku=f"MUG-00{n}", name=f"Mug {n}", get_absolute_url=f"/m/{n}/")
        for n in (1, 2)
    ]
    recommendation = types.SimpleNamespace(
        correlation_id="c-1", campaign_id="similar-products", products=items
    )

    html = _render("template-recommendations", monkeypatch, recommendation=recommendation)

    assert (
        '<section data-synerise-frame="recommendation" data-synerise-correlation-id="c-1" '
        'data-synerise-campaign-id="similar-products">'
    ) in html
    assert '<a href="/m/2/" data-synerise-item="MUG-002">Mug 2</a>' in html


def test_tracking_code_template_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    html = _render("tracking-code", monkeypatch)

    assert f'data-synerise-tracker-key="{settings.SYNERISE["TRACKER_KEY"]}"' in html
    assert 'data-synerise-endpoint="/synerise/beacon/"' in html
    assert "/static/django_synerise/beacon.js" in html


def test_search_template_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    products = [
        types.SimpleNamespace(sku=f"TEA-00{n}", name=f"Tea {n}", get_absolute_url=f"/t/{n}/")
        for n in (1, 2, 3)
    ]
    results = types.SimpleNamespace(correlation_id="s-1", products=products)

    html = _render("template-search", monkeypatch, results=results)

    assert '<ol data-synerise-frame="search" data-synerise-correlation-id="s-1">' in html
    assert 'data-synerise-item="TEA-003" data-synerise-position="3"' in html


# -- Running the flusher and operations -------------------------------------------------


def _manage_commands(text: str) -> list[list[str]]:
    """The argument lists of every ``manage.py <command> ...`` in ``text``."""
    found = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0]
        words = shlex.split(line)
        for index, word in enumerate(words):
            if word.endswith("manage.py"):
                found.append(words[index + 1 :])
    return found


def _parse(arguments: list[str]) -> Any:
    """Parse ``arguments`` with the command's own parser (unknown flags fail)."""
    command = load_command_class(
        "django_synerise", arguments[0]
    )  # only the package's commands appear
    return command.create_parser("manage.py", arguments[0]).parse_args(arguments[1:])


@pytest.mark.django_db
def test_cron_sample_runs(synerise_stand_in: LocalSynerise) -> None:
    [arguments] = _manage_commands(sample("cron"))
    assert sample("cron").startswith("* * * * * cd /srv/shop && ")
    assert _parse(arguments).max_events == 100000
    track("dog.bark", client={"customId": "7"})

    call_command(*arguments, stdout=io.StringIO())

    assert synerise_stand_in.count == 1


@pytest.mark.parametrize("name", ["systemd", "supervisor"])
def test_service_samples_run_a_loop_worker(name: str) -> None:
    config = configparser.RawConfigParser()
    config.read_string(sample(name))
    section = "Service" if name == "systemd" else "program:synerise-flush"
    key = "ExecStart" if name == "systemd" else "command"
    line = config.get(section, key)
    [arguments] = _manage_commands(line)

    options = _parse(arguments)

    assert options.loop is True and options.interval == 5.0
    assert line.startswith("/srv/shop/.venv/bin/python manage.py")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_celery_samples_wire_a_worker_that_drains_the_outbox(tmp_path: Path) -> None:
    """A project made of the docs' celery.py, __init__.py and settings, run as the docs say."""
    from django.db import connection

    from django_synerise import track_many
    from tests.drain import settings_for
    from tests.workers import Worker, mixed_events, worker_env

    redis = pytest.importorskip("redis")  # what "celery[redis]" installs
    broker = os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")
    try:
        redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as err:
        pytest.skip(f"no Redis broker at {broker}: {err}")
    assert shlex.split(sample("celery-install")) == [
        "pip",
        "install",
        "./django-synerise[celery]",
        "celery[redis]",
    ]
    assert re.search(r"^celery = \[", (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    project = tmp_path / "myproject"
    project.mkdir()
    (project / "__init__.py").write_text(sample("celery-init"))
    (project / "celery.py").write_text(sample("celery-app"))
    documented = sample("celery-beat")
    queue = f"synerise-docs-{uuid.uuid4().hex[:12]}"
    (project / "settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n\n"
        + documented.replace('"redis://127.0.0.1:6379/0"', repr(broker))
        + "\n# The test's own: a quick schedule, and a queue no other test run reads.\n"
        + 'CELERY_BEAT_SCHEDULE["synerise-flush-outbox"]["schedule"] = 0.5\n'
        + f"CELERY_TASK_DEFAULT_QUEUE = {queue!r}\n"
    )
    command = shlex.split(sample("celery-worker"))
    assert command[:4] == ["celery", "-A", "myproject", "worker"]

    with LocalSynerise(record="salts") as server:
        env = worker_env(connection.settings_dict, settings_for(server))
        del env["DJANGO_SETTINGS_MODULE"]  # celery.py's setdefault names myproject.settings
        env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
        track_many(mixed_events(200, ai=False))
        worker = Worker(
            "docs-celery",
            [
                *command[1:],
                *("-n", f"{queue}@%h", "-s", str(tmp_path / "beat")),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            env,
            tmp_path,
            module="celery",
            ready_marker=" ready.",
            merge_stderr=True,
        ).start()
        try:
            assert server.wait_for_events(200, timeout=120), worker.diagnostics()
            code = worker.terminate()
        finally:
            worker.stop_quietly()
        counts = server.salt_counts()

    assert code == 0, worker.diagnostics()
    assert len(counts) == 200 and max(counts.values()) == 1
    assert "django_synerise.tasks.flush_outbox" in "\n".join(worker.lines)


def test_celery_beat_sample_names_the_task() -> None:
    from django_synerise.tasks import flush_outbox

    schedule = run_sample("celery-beat")["CELERY_BEAT_SCHEDULE"]

    entry = schedule["synerise-flush-outbox"]
    assert entry["task"] == flush_outbox.name
    assert entry["schedule"] == 10.0


@pytest.mark.django_db
def test_outbox_command_samples(synerise_stand_in: LocalSynerise) -> None:
    commands = _manage_commands(sample("outbox-commands"))
    assert [arguments[1] for arguments in commands] == [
        "stats",
        "stats",
        "show",
        "requeue",
        "requeue",
        "purge",
    ]
    for arguments in commands:
        _parse(arguments)
    row = track("page.visit", client={"customId": "7"}, params={"url": "https://shop.example/"})
    assert row is not None
    OutboxEvent.objects.filter(pk=row.pk).update(status=OutboxEvent.Status.DEAD)
    out = io.StringIO()

    for arguments in commands:
        # The README's ids are examples: use the row this test made.
        real = [str(row.pk) if word in ("42", "43") else word for word in arguments]
        if real[1:] == ["requeue", "--id", str(row.pk), "--id", str(row.pk)]:
            real = real[:4]
        call_command(*real, stdout=out)

    # The requeue lines made the dead row pending again; a flush delivers it.
    flush_to(synerise_stand_in)


@pytest.mark.django_db
def test_health_view_sample() -> None:
    synerise_health = run_sample("health-view")["synerise_health"]
    request = RequestFactory().get("/health/")

    healthy = synerise_health(request)
    assert healthy.status_code == 200
    assert set(json.loads(healthy.content)) >= {"pending", "dead", "oldest_pending_age"}

    track("dog.bark", client={"customId": "7"})
    OutboxEvent.objects.update(status=OutboxEvent.Status.DEAD)
    unhealthy = synerise_health(request)
    assert unhealthy.status_code == 503
    assert json.loads(unhealthy.content)["dead"] == 1


# -- Testing with the stand-in ---------------------------------------------------------


@pytest.mark.django_db
def test_stand_in_sample() -> None:
    ns = run_sample("stand-in")  # asserts what the stand-in received itself

    assert ns["synerise"].count == 1
    assert not OutboxEvent.objects.exists()  # deleted once accepted


def _normalised(code: str) -> str:
    return "\n".join(line.rstrip() for line in textwrap.dedent(code).strip().splitlines())


@needs_example
@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("pytest-conftest", "conftest.py"),
        ("pytest-test", "shop/tests/test_tracking.py"),
    ],
)
def test_pytest_samples_are_the_example_shops_own_tests(name: str, path: str) -> None:
    """Mirrors: tests/test_example_project.py runs the example shop's tests."""
    assert _normalised(sample(name)) in _normalised((EXAMPLE / path).read_text())


# -- Samples about the shop's models: run in the example project -----------------------

SHOP_SETUP = """
from django.conf import settings
from django.test import override_settings
from django_synerise.hooks import untrack_model
from django_synerise.models import OutboxEvent
from django_synerise.testing import LocalSynerise
from shop.models import Cart, CartLine, Order, Product

VISITOR = "0f8fad5b-d9cb-469f-a165-70867728950e"
product = Product.objects.create(sku="MUG-001", name="Mug", category="Kitchen", price="12.50")
OutboxEvent.objects.all().delete()  # the shop's catalog hook recorded the product

def deliver():
    with LocalSynerise() as server:
        stand_in = {"API_BASE_URL": server.url, "API_KEY": server.api_key,
                    "TRACKER_KEY": server.tracker_key, "RAISE_ERRORS": True}
        with override_settings(SYNERISE={**settings.SYNERISE, **stand_in}):
            from django.core.management import call_command
            rows = OutboxEvent.objects.count()
            call_command("synerise_flush")
        # Accepted rows are deleted at once (RETAIN_SENT = 0).
        assert server.count == rows > 0 and not OutboxEvent.objects.exists(), server.report()
"""

SHOP_CHECKS = {
    "model-hooks": """
import shop
untrack_model(CartLine)
untrack_model(Order)
cart = Cart.objects.create(visitor_uuid=VISITOR)
cart.lines.create(product=product, quantity=1, unit_price=product.price)
assert not OutboxEvent.objects.exists()  # no hooks left: the sample's must make the events

ShopConfig("shop", shop).ready()
cart = Cart.objects.create(visitor_uuid=VISITOR)
cart.lines.create(product=product, quantity=2, unit_price=product.price)
order = Order.objects.create(cart=cart, email="ada@example.com", total="25.00", currency="EUR")

rows = {row.action: row.body for row in OutboxEvent.objects.all()}
assert set(rows) == {"product.addToCart", "transaction.charge"}, rows
assert rows["product.addToCart"]["client"] == {"uuid": VISITOR}
assert rows["product.addToCart"]["params"] == {
    "sku": "MUG-001",
    "name": "Mug",
    "quantity": 2,
    "finalUnitPrice": {"amount": 12.5, "currency": "PLN"},
    "source": "WEB_DESKTOP",
}
transaction = rows["transaction.charge"]
assert transaction["orderId"] == str(order.pk)
assert transaction["client"] == {"email": "ada@example.com"}
assert transaction["products"] == [
    {
        "sku": "MUG-001",
        "name": "Mug",
        "quantity": 2,
        "finalUnitPrice": {"amount": 12.5, "currency": "EUR"},
    }
]
assert transaction["revenue"] == {"amount": 25.0, "currency": "EUR"}
deliver()
""",
    "model-hook-decorator": """
from django.db import connection
with connection.schema_editor() as editor:
    editor.create_model(Review)
draft = Review.objects.create(email="ada@example.com", stars=4)
assert not OutboxEvent.objects.exists()  # when= filters unpublished reviews
draft.published = True
draft.save()
Review.objects.create(email="bob@example.com", stars=5, published=True)
rows = [(row.action, row.body["client"], row.body["params"]) for row in OutboxEvent.objects.order_by("id")]
assert rows == [
    ("review.posted", {"email": "ada@example.com"}, {"stars": 4}),
    ("review.posted", {"email": "bob@example.com"}, {"stars": 5}),
], rows
deliver()
""",
}

SHOP_RUNNER = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "shopsite.settings"
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
with open(sys.argv[2]) as parts:
    setup, code, check = json.load(parts)
ns = {"__name__": "shop.readme_sample", "__package__": "shop"}
exec(compile(setup, "setup", "exec"), ns)
exec(compile(code, "docs/model-hooks.md", "exec"), ns)
exec(compile(check, "check", "exec"), ns)
print("sample ok")
"""


def _shop_env(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DJANGO_SETTINGS_MODULE" and not key.startswith("SYNERISE_")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        SYNERISE_API_KEY="",
        SYNERISE_TRACKER_KEY="",
        DEBUG="True",
    )
    return env


@needs_example
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHOP_CHECKS))
def test_shop_model_samples_run_in_the_example_project(name: str, tmp_path: Path) -> None:
    runner = tmp_path / "runner.py"
    runner.write_text(SHOP_RUNNER)
    parts = tmp_path / "parts.json"
    parts.write_text(json.dumps([SHOP_SETUP, sample(name), SHOP_CHECKS[name]]))

    result = subprocess.run(
        [sys.executable, str(runner), str(EXAMPLE), str(parts)],
        env=_shop_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "sample ok" in result.stdout


# -- Quickstart and installation -------------------------------------------------------


@needs_example
def test_quickstart_commands_are_make_targets() -> None:
    assert sample("quickstart").splitlines()[:2] == [
        "make demo    # set up .venv, run the example shop's traffic, deliver it, print what arrived",
        "make test    # ruff, mypy and the whole test suite",
    ]
    result = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "demo", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "example_project/manage.py demo" in result.stdout
    for tool in ("ruff check", "mypy django_synerise", "-m pytest"):
        assert tool in result.stdout


@needs_example
def test_run_by_hand_commands_exist() -> None:
    """tests/test_example_project.py clicks through the served shop this way."""
    make, stand_in, flush = sample("run-by-hand").splitlines()
    assert make.startswith("make run ")
    assert shlex.split(stand_in.split("#")[0]) == [
        ".venv/bin/python",
        "-m",
        "django_synerise.testing",
        "--port",
        "8089",
    ]
    help_text = subprocess.run(
        [sys.executable, "-m", "django_synerise.testing", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "--port" in help_text
    [arguments] = _manage_commands(flush)
    assert _parse(arguments).loop is True
    # The example shop sends to that port when no key is set.
    assert '"http://127.0.0.1:8089"' in (EXAMPLE / "shopsite" / "settings.py").read_text()


def test_install_from_a_checkout_names_this_repository() -> None:
    clone, install = sample("install-checkout").splitlines()
    url = shlex.split(clone)[2]
    pyproject = (ROOT / "pyproject.toml").read_text()
    # The clone's folder is the one pip installs; the repository is the project's own.
    assert shlex.split(clone)[:2] == ["git", "clone"]
    assert f'Source = "{url.removesuffix(".git")}"' in pyproject
    folder = url.removesuffix(".git").rsplit("/", 1)[1]
    assert shlex.split(install) == ["pip", "install", f"./{folder}"]
    assert re.search(r'^name = "django-synerise"$', pyproject, re.MULTILINE)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "sqlite").startswith("sqlite"),
    reason="database-independent; runs with the SQLite suite",
)
def test_install_from_a_built_wheel(tmp_path: Path) -> None:
    """The README's two wheel lines, with this checkout for ``./django-synerise``."""
    import django_synerise

    build, install = (shlex.split(line) for line in sample("install-wheel").splitlines())
    assert build[:3] == ["python", "-m", "build"] and build[-1] == "./django-synerise"
    outdir = build.index("--outdir") + 1
    build[outdir] = str(tmp_path / build[outdir])
    subprocess.run(
        [sys.executable, *build[1:-1], str(ROOT)], check=True, capture_output=True, timeout=300
    )
    # The file the README names is the one the build wrote (its version is this one's).
    assert install[:2] == ["pip", "install"]
    wheel = tmp_path / install[2]
    assert wheel.exists(), sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert wheel.name.startswith(f"django_synerise-{django_synerise.__version__}-")
    # Installed on its own (dependencies are this environment's), it is importable.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            target,
            wheel,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    installed = subprocess.run(
        [sys.executable, "-c", "import django_synerise; print(django_synerise.__file__)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(installed).is_relative_to(target)
    assert (target / "django_synerise" / "static" / "django_synerise" / "beacon.js").exists()


@pytest.mark.django_db
def test_curl_records_a_page_visit_only_with_the_cookie(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import urlsplit

    from django.http import HttpResponse

    words = shlex.split(sample("curl-page-visit"))
    assert words[:2] == ["curl", "--cookie"] and len(words) == 4
    name, value = words[2].split("=", 1)
    url = urlsplit(words[3])
    urls = url_module(monkeypatch, path(url.path.lstrip("/"), lambda request: HttpResponse("<p>")))
    as_curl = {"HTTP_USER_AGENT": "curl/8.5.0", "HTTP_HOST": url.netloc}

    with override_settings(ROOT_URLCONF=urls, MIDDLEWARE=with_page_visits()):
        assert client.get(url.path, **as_curl).status_code == 200
        assert bodies("page.visit") == []  # "nothing happens" without the cookie
        client.cookies[name] = value
        assert client.get(url.path, **as_curl).status_code == 200

    [body] = bodies("page.visit")
    assert body["client"] == {"uuid": value}
    assert body["params"]["url"] == words[3]


def test_beacon_js_needs_collectstatic_outside_runserver(client: Any, tmp_path: Path) -> None:
    """What the README and docs/beacons.md say about serving ``beacon.js``."""
    from django.templatetags.static import static

    script = static("django_synerise/beacon.js")
    # Django itself serves no static files (runserver does, with DEBUG): under gunicorn
    # or uvicorn without a static server the script is a 404.
    with override_settings(DEBUG=False):
        assert client.get(script).status_code == 404
    with override_settings(STATIC_ROOT=str(tmp_path)):
        call_command("collectstatic", "--noinput", verbosity=0)
    assert (
        (tmp_path / "django_synerise" / "beacon.js").read_text().startswith("/*! django-synerise")
    )
    for page in ("README.md", "docs/beacons.md"):
        text = " ".join((ROOT / page).read_text().split())
        assert "run `manage.py collectstatic` and serve `STATIC_ROOT`" in text, page


def test_the_suite_runs_on_the_databases_the_readme_names() -> None:
    engines = []
    for line in sample("test-on-other-databases").splitlines():
        assignment, *command = shlex.split(line)
        assert command == ["make", "test"]
        key, url = assignment.split("=", 1)
        assert key == "DATABASE_URL"
        engine = subprocess.run(
            [sys.executable, "-c", "import tests.settings as s; print(s.DATABASES['default'])"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        engines.append(ast.literal_eval(engine)["ENGINE"])
    assert engines == ["django.db.backends.postgresql", "django.db.backends.mysql"]
    # CI runs the PostgreSQL and MariaDB suites with the same URLs.
    ci = (ROOT / ".ci" / "run").read_text() if (ROOT / ".ci" / "run").exists() else ""
    for line in sample("test-on-other-databases").splitlines():
        assert not ci or line.split()[0] in ci


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_add_to_an_existing_project_in_a_fresh_startproject(tmp_path: Path) -> None:
    """The README's steps, literally, in a new ``django-admin startproject``."""
    site = tmp_path / "site"
    site.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL") and not key.startswith("SYNERISE_")
    }
    django_admin = Path(sys.executable).with_name("django-admin")
    subprocess.run(
        [str(django_admin), "startproject", "mysite", str(site)], check=True, env=env, timeout=60
    )
    with (site / "mysite" / "settings.py").open("a") as settings_file:
        settings_file.write("\n" + sample("startproject-settings"))
    with (site / "mysite" / "urls.py").open("a") as urls_file:
        urls_file.write("\n" + sample("startproject-urls"))

    # The README's port, moved to a free one so that tests may run side by side.
    port = str(_free_port())
    [stand_in_line] = sample("startproject-stand-in").splitlines()
    stand_in_command = shlex.split(stand_in_line.replace("8089", port))
    assert stand_in_command[:3] == ["python", "-m", "django_synerise.testing"]
    stand_in = subprocess.Popen(
        [sys.executable, *stand_in_command[1:]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    outputs = []
    try:
        assert stand_in.stdout is not None
        assert stand_in.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        for line in sample("startproject-steps").splitlines():
            words = shlex.split(line.replace("8089", port))
            if words[0] == "export":
                env.update(word.split("=", 1) for word in words[1:])
                continue
            assert words[:2] == ["python", "manage.py"], line
            result = subprocess.run(
                [sys.executable, *words[1:]],
                cwd=site,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
            outputs.append(result.stdout)
    finally:
        stand_in.send_signal(signal.SIGINT)
        report, _ = stand_in.communicate(timeout=10)

    assert outputs[-1].startswith("sent 1, retried 0, dead 0, remaining 0"), outputs[-1]
    assert re.search(r"^v4-batch\s+custom\s+1$", report, re.MULTILINE), report
    # And the project passes its system checks with the README's settings.
    check = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues" in check.stdout, check.stdout + check.stderr


# -- the documentation site -------------------------------------------------------------


@pytest.mark.skipif(not (ROOT / "mkdocs.yml").exists(), reason="mkdocs.yml is not in this tree")
def test_the_site_builds_strictly_with_the_readme_as_its_front_page(tmp_path: Path) -> None:
    """``make docs``: a broken link or anchor in any page fails this build."""
    pytest.importorskip("mkdocs", reason="mkdocs is in the docs extra")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Add it to an existing project" in (site / "index.html").read_text()
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert (site / page.stem / "index.html").exists(), page.name
        # The front door lists every page (the site's menu would hide a missing link).
        assert f"](docs/{page.name})" in readme, f"the README does not link {page.name}"
