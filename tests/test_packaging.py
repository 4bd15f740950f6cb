"""The built distributions: what they contain, and that the wheel works once installed.

Builds the sdist and the wheel (from the sdist, as ``python -m build`` does), then
installs the wheel, not the source tree, into a fresh virtualenv, creates a
project with ``django-admin startproject``, runs ``migrate``, tracks one event,
and flushes it to the stand-in started from the installed wheel.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import django_synerise

pytestmark = [
    pytest.mark.slow,
    # Nothing here touches the test database: one run (the SQLite one) is enough.
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "sqlite").startswith("sqlite"),
        reason="database-independent; runs with the SQLite suite",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_synerise"


def _run(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 300)
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (path,) = dist.glob("django_synerise-*.whl")
    return path


@pytest.fixture(scope="module")
def sdist(dist: Path) -> Path:
    (path,) = dist.glob("django_synerise-*.tar.gz")
    return path


def _app_files() -> set[str]:
    """Non-Python files Django loads at run time, plus migrations, as paths in the wheel."""
    found = {"django_synerise/py.typed"}
    for folder in ("templates", "static"):
        for path in (PACKAGE / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                found.add(path.relative_to(ROOT).as_posix())
    for path in (PACKAGE / "migrations").glob("*.py"):
        found.add(path.relative_to(ROOT).as_posix())
    return found


def test_versions_are_single_sourced(wheel: Path, sdist: Path) -> None:
    version = django_synerise.__version__
    assert version != "0+unknown"
    assert wheel.name.startswith(f"django_synerise-{version}-")
    assert sdist.name == f"django_synerise-{version}.tar.gz"


def test_wheel_ships_app_files_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = _app_files()
    assert "django_synerise/static/django_synerise/beacon.js" in expected
    assert any(name.startswith("django_synerise/templates/") for name in expected)
    assert "django_synerise/migrations/0001_initial.py" in expected
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    dist_info = f"django_synerise-{django_synerise.__version__}.dist-info/"
    strays = sorted(n for n in names if not n.startswith(("django_synerise/", dist_info)))
    assert strays == [], "the wheel installs files outside the package"
    assert f"{dist_info}licenses/LICENSE" in names


def test_sdist_ships_app_files_tests_and_docs(sdist: Path) -> None:
    prefix = sdist.name.removesuffix(".tar.gz") + "/"
    with tarfile.open(sdist) as archive:
        names = {n.removeprefix(prefix) for n in archive.getnames()}
    missing = sorted(_app_files() - names)
    assert missing == [], f"missing from the sdist: {missing}"
    for name in (
        "LICENSE",
        "README.md",
        "docs/tracking.md",
        "CHANGELOG.md",
        "pyproject.toml",
        "tests/settings.py",
        "tests/docs_samples.py",
    ):
        assert name in names
    assert not any(n.endswith((".pyc", ".sqlite3")) for n in names)


def test_long_description_renders(dist: Path) -> None:
    _run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))


def _matrix(*nox_args: str) -> list[dict[str, Any]]:
    pytest.importorskip("nox", reason="nox is in the dev extra")
    listed = _run(sys.executable, "-m", "nox", "--list", "--json", *nox_args, cwd=ROOT)
    cells: list[dict[str, Any]] = json.loads(listed.stdout)
    return cells


def test_classifiers_claim_exactly_what_the_matrix_runs(wheel: Path) -> None:
    cells = _matrix()
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(
            f"django_synerise-{django_synerise.__version__}.dist-info/METADATA"
        ).decode()
    classifiers = [
        line.removeprefix("Classifier: ")
        for line in metadata.splitlines()
        if line.startswith("Classifier: ")
    ]
    pythons = {
        c.rsplit(" :: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    djangos = {
        c.rsplit(" :: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Framework :: Django :: \d+\.\d+", c)
    }
    assert pythons == {cell["python"] for cell in cells}
    assert djangos == {cell["call_spec"]["django"] for cell in cells}
    oldest = min(pythons, key=lambda v: tuple(map(int, v.split("."))))
    assert f"Requires-Python: >={oldest}" in metadata.splitlines()


def test_ci_runs_the_corner_cells_and_postgresql_for_both_series() -> None:
    listed = _matrix()
    cells = {(c["python"], c["call_spec"]["django"]): c["tags"] for c in listed}
    # The README names cells this way: nox -s "tests(py3.12-django6.1)".
    assert {c["session"] for c in listed} == {f"tests(py{p}-django{d})" for p, d in cells}
    assert set(cells) == {
        *(("3.10", "5.2"), ("3.11", "5.2"), ("3.12", "5.2"), ("3.13", "5.2")),
        *(("3.12", series) for series in ("6.0", "6.1")),
        *(("3.13", series) for series in ("6.0", "6.1")),
    }
    ci = {(c["python"], c["call_spec"]["django"]) for c in _matrix("--tags", "ci")}
    assert ci == {("3.10", "5.2"), ("3.13", "6.1")}
    postgres = {cell for cell, tags in cells.items() if "postgres" in tags}
    assert postgres == {("3.11", "5.2"), ("3.13", "6.1")}


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the wheel installed, borrowing only the dependencies.

    The dependencies (Django, DRF, requests) come from this interpreter's
    site-packages through a ``.pth`` line, which adds the directory without
    running its ``.pth`` files: an editable install of this checkout there is
    not activated, so ``django_synerise`` can only come from the wheel.
    """
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site_packages = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).stdout.strip()
    )
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site_packages / "_borrowed_dependencies.pth").write_text("\n".join(sorted(dependencies)))
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        "--no-compile",
        wheel,
    )
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "DATABASE_URL", "PYTHONHOME")
    }
    env.update(extra)
    return env


@pytest.fixture
def stand_in(fresh_venv: Path) -> Iterator[str]:
    """``python -m django_synerise.testing`` from the installed wheel; yields its URL."""
    process = subprocess.Popen(
        [str(fresh_venv / "bin" / "python"), "-m", "django_synerise.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr and process.stderr.read()
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_installed_wheel_migrates_and_delivers_one_event(
    fresh_venv: Path, stand_in: str, tmp_path: Path
) -> None:
    python = fresh_venv / "bin" / "python"
    env = _clean_env(DJANGO_SETTINGS_MODULE="mysite.settings")

    location = _run(
        python, "-c", "import django_synerise; print(django_synerise.__file__)", cwd=tmp_path
    ).stdout.strip()
    assert Path(location).resolve().is_relative_to(fresh_venv.resolve()), location

    site = tmp_path / "site"
    site.mkdir()
    _run(python, "-m", "django", "startproject", "mysite", site, env=_clean_env())
    settings = site / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text()
        + textwrap.dedent(
            f"""
            INSTALLED_APPS += ["rest_framework", "django_synerise"]
            SYNERISE = {{
                "API_BASE_URL": {stand_in!r},
                "API_KEY": "test-api-key",
                "TRACKER_KEY": "test-tracker-key",
            }}
            """
        )
    )

    manage = site / "manage.py"
    migrated = _run(python, manage, "migrate", "--noinput", cwd=site, env=env)
    assert "Applying django_synerise.0001_initial... OK" in migrated.stdout

    _run(
        python,
        manage,
        "shell",
        "-c",
        "from django_synerise import track; track('signup', client={'customId': '7'})",
        cwd=site,
        env=env,
    )
    flushed = _run(python, manage, "synerise_flush", cwd=site, env=env)
    assert "sent 1, retried 0, dead 0" in flushed.stdout, flushed.stdout

    with urllib.request.urlopen(f"{stand_in}/__local__/summary", timeout=10) as response:
        received = json.load(response)
    assert received["count"] == 1
    assert [types for types in received["summary"].values()] == [{"custom": 1}]

    statuses = _run(
        python,
        manage,
        "shell",
        "-c",
        "from django_synerise.models import OutboxEvent; "
        "print(list(OutboxEvent.objects.values_list('status', flat=True)))",
        cwd=site,
        env=env,
    )
    assert statuses.stdout.strip().splitlines()[-1] == "[]"
