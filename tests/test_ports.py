"""Servers the tests start are theirs: a port given out twice is seen, not talked to (tracking/ui.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweeplab.tracking.ui import free_port, serves_on, start_ui

# A stranger on the port: answers every GET, /health included, with 200.
STRANGER = """
import http.server, sys
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"OK")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""


@pytest.fixture
def stranger() -> Iterator[tuple[subprocess.Popen, int]]:
    """Another process's server on a free port, answering /health."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", STRANGER, str(port)], start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    yield process, port
    process.kill()
    process.wait()


def test_the_listening_socket_names_its_process(stranger: tuple[subprocess.Popen, int]) -> None:
    process, port = stranger
    assert serves_on(process, port)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True) as other:
        try:
            assert not serves_on(other, port)
        finally:
            other.kill()


def test_a_server_that_cannot_bind_is_not_mistaken_for_the_one_answering(
    stranger: tuple[subprocess.Popen, int], tmp_path: Path
) -> None:
    """`mlflow server` on a port another server holds: refused, although /health answers there."""
    _, port = stranger
    with pytest.raises(RuntimeError, match="could not bind .* another process holds it"):
        start_ui(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "server.log", port, timeout=120, kind="server")
