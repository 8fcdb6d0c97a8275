"""Serve a `FakeDiscord` over real HTTP (stdlib server, converting to/from httpx objects)."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from .fake import FakeDiscord

HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def make_handler(fake: FakeDiscord, *, log: bool = False) -> type[BaseHTTPRequestHandler]:
    from .fake import InjectedConnectError

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeDiscord/1.0"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = self.headers.get("Host") or "127.0.0.1"
            request = httpx.Request(
                self.command,
                f"http://{host}{self.path}",
                headers=[(k, v) for k, v in self.headers.items() if k.lower() != "host"] + [("Host", host)],
                content=body,
            )
            violations_before = len(fake.violations)
            try:
                response = fake.handle(request)
            except InjectedConnectError:
                self.close_connection = True
                return
            if len(fake.violations) > violations_before:
                print(f"[fake-discord] OpenAPI violation: {fake.violations[-1]}", file=sys.stderr)
            payload = response.read()
            self.send_response(response.status_code)
            for name, value in response.headers.multi_items():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: object) -> None:
            if log:
                super().log_message(format, *args)

    return Handler


def start_server(
    fake: FakeDiscord, host: str, port: int, *, log: bool = False
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer((host, port), make_handler(fake, log=log))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-discord", daemon=True)
    thread.start()
    return server, thread
