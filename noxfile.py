"""The compatibility matrix: every supported Python x Django pair runs the full test suite.

    make matrix                  # every cell (what the classifiers in pyproject.toml claim)
    make matrix NOX_ARGS="-t ci" # the corner cells only: oldest and newest pair
    .venv/bin/nox -l             # list the cells

Each cell installs the package with its test extra into its own virtualenv, pins
Django to the cell's series, and runs pytest on SQLite. The cells marked
``postgres`` run the suite a second time against ``MATRIX_DATABASE_URL``
(default: the local PostgreSQL). Tests marked ``browser`` (they need a Chromium
build of their own) and ``soak`` (minutes long) are deselected in the matrix;
``make test`` runs them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
# A cell whose interpreter is missing must fail, not be skipped: a skipped cell
# proves nothing, yet the classifiers would still claim it.
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"
nox.options.reuse_venv = "yes"

# Each cell picks its databases itself; an inherited DATABASE_URL would turn the
# SQLite run into a second run on that database.
os.environ.pop("DATABASE_URL", None)
POSTGRES_URL = os.environ.get("MATRIX_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-m", "not browser and not soak"]

# Django series -> the requirement a cell installs.
DJANGO = {
    "5.2": "Django>=5.2,<5.3",
    "6.0": "Django>=6.0,<6.1",
    "6.1": "Django>=6.1,<6.2",
}

# (python, django, tags). "postgres" cells run the suite on PostgreSQL as well;
# "ci" cells are the corners CI runs (oldest and newest supported pair).
CELLS = [
    ("3.10", "5.2", ["ci"]),
    ("3.11", "5.2", ["postgres"]),
    ("3.12", "5.2", []),
    ("3.13", "5.2", []),
    ("3.12", "6.0", []),
    ("3.13", "6.0", []),
    ("3.12", "6.1", []),
    ("3.13", "6.1", ["ci", "postgres"]),
]


def _use_pyenv_interpreters() -> None:
    """Put pyenv's interpreters on PATH ahead of its shims.

    pyenv's ``python3.X`` shims only work for the versions selected with
    ``pyenv global``/``local``; nox would find the shim and fail to run it.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    newest: dict[str, tuple[tuple[int, ...], Path]] = {}
    for candidate in root.iterdir():
        match = re.fullmatch(r"(3\.\d+)\.(\d+)", candidate.name)
        if match is None or not (candidate / "bin").is_dir():
            continue
        key = (int(match.group(2)),)
        if match.group(1) not in newest or newest[match.group(1)][0] < key:
            newest[match.group(1)] = (key, candidate / "bin")
    dirs = [str(path) for _, path in newest.values()]
    os.environ["PATH"] = os.pathsep.join([*dirs, os.environ.get("PATH", "")])


_use_pyenv_interpreters()


@nox.session
@nox.parametrize(
    ("python", "django"),
    [
        nox.param(python, django, id=f"py{python}-django{django}", tags=tags)
        for python, django, tags in CELLS
    ],
)
def tests(session: nox.Session, django: str) -> None:
    """Run the suite for one Python x Django cell (SQLite, plus PostgreSQL where tagged)."""
    session.install("-e", ".[test]", DJANGO[django])
    # Fail a cell that did not get the interpreter or Django series it claims to prove.
    session.run(
        "python",
        "-c",
        "import sys, django; "
        "print('Python', sys.version.split()[0], 'Django', django.__version__); "
        f"assert '%d.%d' % sys.version_info[:2] == '{session.python}', 'wrong Python'; "
        f"assert '%d.%d' % django.VERSION[:2] == '{django}', 'wrong Django'",
    )
    databases: dict[str, str | None] = {"SQLite": None}
    if "postgres" in _tags(session.python, django):
        databases["PostgreSQL"] = POSTGRES_URL
    failed: list[str] = []
    for name, url in databases.items():
        env = {"DATABASE_URL": url} if url else {}
        # Run every database even when one fails: both results are worth having.
        try:
            session.run("python", "-m", "pytest", *PYTEST_ARGS, *session.posargs, env=env)
        except nox.command.CommandFailed:
            failed.append(name)
    if failed:
        session.error(f"the suite failed on {' and '.join(failed)}")


def _tags(python: object, django: str) -> list[str]:
    for cell_python, cell_django, tags in CELLS:
        if cell_python == python and cell_django == django:
            return tags
    return []
