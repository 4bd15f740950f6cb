"""Hooks of the documentation site (mkdocs.yml): README.md is its front page.

The README links into ``docs/`` and to repository files (``CHANGELOG.md``,
``LICENSE``) as they are seen on a checkout or on GitHub; the docs pages link
back to ``../README.md`` and to repository files with ``../``. On the site, a
link into ``docs/`` is a page, ``../README.md`` is the front page, and any
other repository file is its page on GitHub.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPOSITORY = "https://github.com/django-synerise/django-synerise/blob/main/"
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _is_external(target: str) -> bool:
    return "://" in target or target.startswith(("#", "mailto:"))


def _front_page(readme: str) -> str:
    def rewrite(match: re.Match[str]) -> str:
        target = match.group(1)
        if _is_external(target):
            return match.group(0)
        if target.startswith("docs/"):
            return f"]({target.removeprefix('docs/')})"
        return f"]({REPOSITORY}{target})"

    return _LINK.sub(rewrite, readme)


def _docs_page(markdown: str) -> str:
    def rewrite(match: re.Match[str]) -> str:
        target = match.group(1)
        if _is_external(target) or not target.startswith("../"):
            return match.group(0)
        target = target.removeprefix("../")
        if target == "README.md" or target.startswith("README.md#"):
            return f"]({target.replace('README.md', 'index.md', 1)})"
        return f"]({REPOSITORY}{target})"

    return _LINK.sub(rewrite, markdown)


def on_files(files: Files, config: Any) -> Files:
    readme = Path(config.config_file_path).parent / "README.md"
    files.append(File.generated(config, "index.md", content=_front_page(readme.read_text())))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri == "index.md":
        return markdown
    return _docs_page(markdown)
