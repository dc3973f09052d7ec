"""A local HTTP server for download tests: full, truncated, unsized, endless and trickled
bodies, 404s, and an imitation of GitHub's "get a release" REST API.

Routes: ``/ok/NAME`` (the file, with its length), ``/truncated/NAME`` (cut short),
``/nolength/NAME`` (no Content-Length: the body ends when the connection closes),
``/endless/NAME`` (no Content-Length, zeros until the client hangs up or
``endless_limit`` bytes), ``/trickle/NAME`` (the length announced, then one byte every
``trickle_interval`` seconds, ``trickle_limit`` bytes in all) and
``/api/repos/OWNER/REPO/releases/tags/TAG`` (the release set by :meth:`LocalServer.publish`,
or ``api_status`` when it is not 200).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

FILE_NAME = "tiny.pt"
API_PREFIX = "/api"
RELEASE_URL = "https://github.com/someone/models/releases/download/v1/"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: LocalServer

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path.startswith(API_PREFIX + "/"):
            self._release()
            return
        kind, _, name = self.path.lstrip("/").partition("/")
        body = self.server.files.get(name)
        if body is None or kind not in ("ok", "truncated", "nolength", "endless", "trickle"):
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        getattr(self, f"_{kind}")(body)

    def _ok(self, body: bytes) -> None:
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _truncated(self, body: bytes) -> None:
        self.send_header("Content-Length", str(len(body) + 1000))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def _nolength(self, body: bytes) -> None:
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _endless(self, body: bytes) -> None:
        self.send_header("Connection", "close")
        self.end_headers()
        block = bytes(64 * 1024)
        try:
            while self.server.sent < self.server.endless_limit:
                self.wfile.write(block)
                self.server.sent += len(block)
        except OSError:  # the client hung up: what a cap should make it do
            pass
        self.close_connection = True

    def _trickle(self, body: bytes) -> None:
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for byte in body[: self.server.trickle_limit]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                self.server.sent += 1
                time.sleep(self.server.trickle_interval)
        except OSError:
            pass
        self.close_connection = True

    def _release(self) -> None:
        if self.server.api_status != 200:
            self.send_error(self.server.api_status, "API unavailable (test)")
            return
        release = self.server.releases.get(self.path[len(API_PREFIX) :])
        if release is None:
            self.send_error(404, "Not Found")
            return
        body = json.dumps(release).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LocalServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.releases: dict[str, dict] = {}
        self.reset()

    def reset(self) -> None:
        """No files, releases or requests; the API up; default trickle and endless limits."""
        self.files.clear()
        self.requests.clear()
        self.releases.clear()
        self.api_status = 200
        self.sent = 0
        self.endless_limit = 64 << 20
        self.trickle_interval = 0.2
        self.trickle_limit = 1 << 30

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, kind: str, name: str = FILE_NAME) -> str:
        return f"{self.base}/{kind}/{name}"

    @property
    def api(self) -> str:
        """The base URL of the imitated REST API (what replaces https://api.github.com)."""
        return self.base + API_PREFIX

    def publish(
        self,
        name: str,
        body: bytes,
        *,
        digest: str | None = "right",
        repo: str = "someone/models",
        tag: str = "v1",
    ) -> str:
        """Serve ``body`` as ``name`` and list it in release ``tag`` of ``repo``, with
        its ``digest``: "right" (its sha256), None (an older asset without one) or a given
        "sha256:..." string. Returns the asset's github.com download URL."""
        self.files[name] = body
        asset: dict[str, object] = {"name": name, "size": len(body), "state": "uploaded"}
        if digest == "right":
            asset["digest"] = "sha256:" + hashlib.sha256(body).hexdigest()
        elif digest is not None:
            asset["digest"] = digest
        release = self.releases.setdefault(
            f"/repos/{repo}/releases/tags/{tag}", {"tag_name": tag, "assets": []}
        )
        release["assets"] = [a for a in release["assets"] if a["name"] != name] + [asset]
        return f"https://github.com/{repo}/releases/download/{tag}/{name}"


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
    _http_server.reset()
    return _http_server
