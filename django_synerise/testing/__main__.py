"""Run the Synerise stand-in in the foreground: ``python -m django_synerise.testing``.

Prints the base URL alone on the first line of stdout (so a script can read
it), serves until SIGINT or SIGTERM, then prints :meth:`LocalSynerise.report`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .server import LocalSynerise


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until a signal arrives, print the report; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m django_synerise.testing",
        description="A local stand-in for the Synerise API (for tests and demos).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--api-key", default="test-api-key", help="workspace API key accepted")
    parser.add_argument("--tracker-key", default="test-tracker-key", help="AI events token")
    parser.add_argument("--workspace-guid", default=None, help="enables HTTP Basic auth")
    parser.add_argument("--token-ttl", type=float, default=3600, help="JWT lifetime, seconds")
    parser.add_argument("--record", choices=("full", "salts", "count"), default="salts")
    parser.add_argument("--seed", type=int, default=None, help="seed for random faults")
    parser.add_argument(
        "--ai-text-plain",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="accept text/plain JSON bodies on the AI endpoints, as browsers send them (on)",
    )
    parser.add_argument(
        "--catalog",
        action="append",
        default=None,
        metavar="NAME",
        help="a catalog of the workspace, ids from 1 (repeatable; default: products)",
    )
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)

    server = LocalSynerise(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        tracker_key=args.tracker_key,
        workspace_guid=args.workspace_guid,
        token_ttl=args.token_ttl,
        record=args.record,
        seed=args.seed,
        ai_text_plain=args.ai_text_plain,
        catalogs={name: index for index, name in enumerate(args.catalog or ["products"], 1)},
        verbose=args.verbose,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        server.start()
    except OSError as err:
        print(
            f"cannot listen on {args.host}:{args.port}: {err.strerror or err}; "
            "pass another --port (0 picks a free one)",
            file=sys.stderr,
        )
        return 2
    print(server.url, flush=True)
    # The keys themselves stay out of the banner: a real key passed by mistake would
    # otherwise land in a terminal's scrollback or a CI log.
    keys = ", ".join(
        f"{name} {'default' if value == default else 'as given'}"
        for name, value, default in (
            ("API key", server.api_key, parser.get_default("api_key")),
            ("tracker key", server.tracker_key, parser.get_default("tracker_key")),
        )
    )
    print(
        f"LocalSynerise listening on {server.url} ({keys}; see --help); Ctrl+C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        # A timed wait: the signal handler then runs promptly in this (main) thread.
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    print(server.report(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
