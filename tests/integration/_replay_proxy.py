"""A replaying proxy for the freshness tests: a small threaded HTTP server on loopback that
forwards every call to the sandbox, records the last answer per path, and can serve a
recorded answer again instead of forwarding (an older catalogue, a frozen snapshot)."""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass
from typing import Any

import requests

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
              "content-encoding", "server", "date"}


@dataclass(frozen=True)
class Recorded:
    status: int
    headers: dict[str, str]
    body: bytes


class ReplayProxy:
    """Forwards to ``upstream``; ``replay[path] = Recorded`` answers that path from the
    record instead (the query string is ignored, so a frozen snapshot answers deltas too)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.last: dict[str, Recorded] = {}
        self.replay: dict[str, Recorded] = {}
        self.replayed: dict[str, int] = {}
        self._session = requests.Session()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet; the URL may hold a subject id

            def _handle(self) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                answer = proxy.replay.get(path)
                if answer is not None:
                    proxy.replayed[path] = proxy.replayed.get(path, 0) + 1
                else:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
                    resp = proxy._session.request(self.command, proxy.upstream + self.path,
                                                  headers=headers, data=body, timeout=30)
                    answer = Recorded(resp.status_code, {
                        k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP
                    }, resp.content)
                    if resp.status_code == 200:
                        proxy.last[path] = answer
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()
        self._thread.join(5)
