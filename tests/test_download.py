import http.server
import threading

import pytest

from vitcore.data import BUNDLED_DATA, load_split
from vitcore.download import DownloadError, download


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""
    truncate_to: int | None = None

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        body = self.payload if self.truncate_to is None else self.payload[: self.truncate_to]
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(shared_zip_or_bundle):
    servers = []

    def start(truncate_to=None):
        handler = type("H", (_Handler,), {"payload": shared_zip_or_bundle.read_bytes(), "truncate_to": truncate_to})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/tiny-imagenet-200.zip"

    yield start
    for s in servers:
        s.shutdown()


@pytest.fixture
def shared_zip_or_bundle():
    from conftest import SHARED_ZIP

    return SHARED_ZIP if SHARED_ZIP.exists() else BUNDLED_DATA


@pytest.mark.slow
def test_download_then_load(server, tmp_path, shared_zip_or_bundle):
    import hashlib

    sha = hashlib.sha256(shared_zip_or_bundle.read_bytes()).hexdigest()
    out = download(server(), tmp_path / "t.zip", sha256=sha, progress=False)
    assert out.read_bytes() == shared_zip_or_bundle.read_bytes()
    assert len(load_split(out, "val").wnids) == 200
    assert list(tmp_path.iterdir()) == [out]


def test_truncated_download_fails_and_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="truncated|failed"):
        download(server(truncate_to=1000), tmp_path / "t.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="checksum"):
        download(server(), tmp_path / "t.zip", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_download(server, tmp_path):
    from vitcore.cli import main

    assert main(["data", "download", "--url", server(truncate_to=10), "--out", str(tmp_path / "z.zip")]) == 2
    assert list(tmp_path.iterdir()) == []
