"""A single-threaded WSGI server for the latency benchmark: ``python -m bench.serve PORT``.

``wsgiref``, one request at a time, one database connection kept open
(``CONN_MAX_AGE``): the server adds the same small, steady cost to every request,
so the difference between a server with ``PageVisitMiddleware`` and one without
is the middleware's. Prints ``ready`` once it listens.
"""

from __future__ import annotations

import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    server = make_server("127.0.0.1", int(sys.argv[1]), application, handler_class=QuietHandler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
