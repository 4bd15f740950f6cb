"""Public signals: sent from OutboxEvent, a failing receiver is logged, not raised."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from django.dispatch import Signal

from django_synerise import signals
from django_synerise.models import OutboxEvent


def test_signals_import_nothing_of_the_package():
    # The layering: models and outbox send these signals, so this module sits below them.
    tree = ast.parse(Path(signals.__file__).read_text(encoding="utf-8"))
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert not [name for name in imported if name.startswith(("django_synerise", "."))]
    relative = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    assert relative == []


def test_a_failing_receiver_is_logged_and_the_others_still_run(caplog):
    signal = Signal()
    seen = []

    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    def fine(sender, **kwargs):
        seen.append((sender, kwargs["ids"]))

    signal.connect(broken, weak=False)
    signal.connect(fine, weak=False)
    with caplog.at_level(logging.ERROR, logger="django_synerise.signals"):
        signals.send_robust(signal, OutboxEvent, ids=[1, 2])
    assert seen == [(OutboxEvent, [1, 2])]
    assert "receiver bug" in caplog.text
