"""A local HTTP server for download tests: full files, truncated responses, 404s."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

FILE_NAME = "tiny.pt"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``/ok/NAME`` fully, ``/truncated/NAME`` cut short, anything else as 404."""

    server: LocalServer

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        kind, _, name = self.path.lstrip("/").partition("/")
        body = self.server.files.get(name)
        if body is None or kind not in ("ok", "truncated"):
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if kind == "ok":
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_header("Content-Length", str(len(body) + 1000))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


class LocalServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []

    def url(self, kind: str, name: str = FILE_NAME) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/{kind}/{name}"


@pytest.fixture(scope="module")
def _http_server() -> Iterator[LocalServer]:
    srv = LocalServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(_http_server: LocalServer) -> LocalServer:
    """The module's local HTTP server, with no files and an empty request log."""
    _http_server.files.clear()
    _http_server.requests.clear()
    return _http_server
