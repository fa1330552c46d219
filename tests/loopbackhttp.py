"""HTTP servers on loopback for the tests: one standing in for a forge's API (the test decides each
answer and keeps what was sent), one serving a bare origin over git's dumb HTTP protocol only to
requests with the right credentials."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message

from tests.gitrepos import Origin

# (path, headers, body) of a POST -> (status, body of the answer)
Answer = Callable[[str, Message, bytes], tuple[int, bytes]]


@contextmanager
def serving_posts(answer: Answer) -> Iterator[str]:
    """A server on a free loopback port for the length of the block, answering each POST with
    `answer`: its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, payload = answer(self.path, self.headers, body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_PUT = do_POST  # a Prometheus Pushgateway takes a job's metrics by PUT

        def log_message(self, format: str, *args: object) -> None:
            pass  # the tests look at what was received, not at an access log on stderr

    with _serving(Handler) as url:
        yield url


@contextmanager
def serving_repository(origin: Origin, authorization: str) -> Iterator[tuple[str, list[str | None]]]:
    """`origin` over git's dumb HTTP protocol for the length of the block, answering only requests
    whose Authorization header is `authorization`: the repository's URL and every Authorization
    header received (None where a request had none)."""
    origin.repo.git.update_server_info()
    seen: list[str | None] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != authorization:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass  # the tests look at what was received, not at an access log on stderr

    with _serving(functools.partial(Handler, directory=str(origin.path.parent))) as url:
        yield f"{url}/{origin.path.name}", seen


@contextmanager
def _serving(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
