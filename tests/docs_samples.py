"""The code samples of README.md and docs/*.md, by name, for the tests that run them.

Every fenced block of those pages is preceded by ``<!-- test: NAME -->``, NAME
unique across all pages; only ``text`` blocks (program output) may go unmarked.
A test fetches a sample with :func:`sample` (its code) or :func:`run_sample`
(executes a Python sample and returns its namespace) and asserts what the
sample promises. ``tests/test_docs.py`` fails when a block is unmarked, when a
name is used twice, or when no test module that imports this one names it.

To document a feature: write the block under its marker in the page of its
topic, then test it where the feature's tests live::

    from tests.docs_samples import run_sample

    def test_the_docs_sample_of_my_feature():
        ns = run_sample("my-feature")
        ...
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!-- test: ([\w-]+) -->$")


@dataclass(frozen=True)
class Block:
    """One fenced block: the page it is on, its marker name (if any), language, code."""

    page: Path
    name: str | None
    language: str
    code: str
    line: int

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def pages() -> list[Path]:
    """README.md, then every page of docs/ in name order."""
    return [README, *sorted(DOCS.glob("*.md"))]


def _parse(page: Path) -> list[Block]:
    found = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start = index
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker = _MARKER.match(lines[previous].strip()) if previous >= 0 else None
        index += 1
        body = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        code = "\n".join(body) + "\n"
        found.append(
            Block(page, marker.group(1) if marker else None, opening.group(1), code, start + 1)
        )
        index += 1
    return found


@functools.cache
def blocks() -> list[Block]:
    """Every fenced block of every page, in page order."""
    return [block for page in pages() for block in _parse(page)]


def block(name: str) -> Block:
    """The block marked ``<!-- test: name -->``; fails unless exactly one page has it."""
    matches = [b for b in blocks() if b.name == name]
    if len(matches) != 1:
        where = ", ".join(b.where for b in matches) or "no page"
        raise LookupError(f"docs sample {name!r} is in {where}; expected exactly one")
    return matches[0]


def sample(name: str) -> str:
    """The code of the block marked ``<!-- test: name -->``."""
    return block(name).code


def run_sample(name: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute a Python sample as a module would; return its namespace."""
    found = block(name)
    ns: dict[str, Any] = {"__name__": f"docs_{name.replace('-', '_')}"}
    ns.update(namespace or {})
    exec(compile(found.code, found.where, "exec"), ns)
    return ns


def page_of(name: str) -> str:
    """The whole text of the page that holds sample ``name`` (for prose next to it)."""
    return block(name).page.read_text(encoding="utf-8")


def all_text() -> str:
    """README.md and every docs page, one after the other."""
    return "\n".join(page.read_text(encoding="utf-8") for page in pages())
