"""A hostile fake registry: a small HTTP server on 127.0.0.1 whose every answer the test writes.

Used only where the real registry cannot misbehave that way: trickling bytes,
endless bodies, a 401 from a redirect target, a plain-HTTP token realm, an
upload ``Location`` on another port. Every request is recorded (method, path,
headers) so a test can assert what reached which server -- above all, which
requests carried an ``Authorization`` header.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from requests.adapters import HTTPAdapter


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        return None

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _dispatch(self) -> None:
        self.server.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        try:
            self.server.respond(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up on us, as it should on a hostile answer

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _dispatch  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[Seen]
    respond: Callable[[Handler], None]


@dataclass
class FakeServer:
    port: int
    seen: list[Seen]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    def requests_to(self, fragment: str) -> list[Seen]:
        return [s for s in self.seen if fragment in s.path]


@contextmanager
def fake_server(respond: Callable[[Handler], None]) -> Iterator[FakeServer]:
    """Serve ``respond(handler)`` for every request on a free loopback port until the block ends."""
    server = _Server(("127.0.0.1", 0), Handler)
    server.seen = []
    server.respond = respond
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeServer(server.server_address[1], server.seen)
    finally:
        server.shutdown()
        server.server_close()


class Resolve(HTTPAdapter):
    """Transport adapter standing in for DNS: ``https://<name>/...`` is sent to ``http://127.0.0.1:<port>/...``.

    Lets a test talk to a "TLS" registry by name (so the client uses its https
    rules) while the bytes go to a fake server on loopback.
    """

    def __init__(self, name: str, port: int) -> None:
        super().__init__()
        self.name, self.port = name, port

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        request.url = request.url.replace(f"https://{self.name}", f"http://127.0.0.1:{self.port}", 1)
        return super().send(request, **kwargs)


def session_resolving(name: str, port: int) -> requests.Session:
    session = requests.Session()
    session.mount(f"https://{name}", Resolve(name, port))
    return session
