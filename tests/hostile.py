"""A hostile Synerise: a proxy in front of the stand-in that echoes credentials back.

Real APIs (and the proxies in front of them) sometimes echo the request in an
error: the ``Authorization`` header, the URL with its ``?token=``, the body with
the ``apiKey``. :class:`EchoingProxy` forwards every request to a
:class:`~django_synerise.testing.LocalSynerise` unchanged, except those that
match a :class:`Rule`: those get an error whose body, ``X-Request-Id``,
``Location`` and message repeat everything secret the request carried. The
secret-hygiene tests then look for those secrets everywhere they could leak.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Rule:
    """Answer requests whose path starts with ``prefix`` with ``status``, ``times`` times."""

    prefix: str
    status: int
    times: int = 1_000_000
    retry_after: str | None = None
    html: bool = False

    def take(self, path: str) -> bool:
        if self.times > 0 and path.startswith(self.prefix):
            self.times -= 1
            return True
        return False


class EchoingProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.echoed = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EchoingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0]
                with proxy._lock:
                    rule = next((r for r in proxy.rules if r.take(path)), None)
                if rule is None:
                    self._forward(body)
                else:
                    with proxy._lock:
                        proxy.echoed += 1
                    self._echo(rule, body)

            def _forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def _echo(self, rule: Rule, body: bytes) -> None:
                authorization = self.headers.get("Authorization", "")
                said = (
                    f"refused {self.path} with Authorization: {authorization}; "
                    f"body {body.decode('utf-8', 'replace')[:300]}"
                )
                if rule.html:
                    data = f"<html><body><pre>{said}</pre></body></html>".encode()
                    content_type = "text/html"
                else:
                    data = json.dumps(
                        {
                            "error": authorization or "Error",
                            "errors": [{"field": self.path, "message": said}],
                            "message": said,
                            "path": self.path,
                            "status": rule.status,
                        }
                    ).encode()
                    content_type = "application/json"
                self.send_response(rule.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Request-Id", authorization or self.path)
                if 300 <= rule.status < 400:
                    self.send_header("Location", f"{proxy.url}{self.path}")
                if rule.retry_after is not None:
                    self.send_header("Retry-After", rule.retry_after)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> EchoingProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
