"""Start ``streamlit run serve.py`` (or ``app.py``) as a subprocess on loopback and wait until it is healthy.

Used by the browser tests, the load test and the app benchmark; it starts a process and never imports streamlit.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ServerError(RuntimeError):
    """The app did not become healthy in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(
    root: str | Path, timeout_s: float = 120.0, extra_args: tuple[str, ...] = (), script: str = "serve.py"
) -> Iterator[tuple[str, float]]:
    """Yield (url, start time from ``time.perf_counter``) of a healthy server running ``script``
    (``app.py``, or ``serve.py``: the same app with its shared resources loaded first); stop it afterwards."""
    port = free_port()
    start = time.perf_counter()
    log = tempfile.NamedTemporaryFile(prefix="streamlit-", suffix=".log", delete=False)  # noqa: SIM115 - kept open
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            script,
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            *extra_args,
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=log,  # a file, not a pipe nobody reads: a chatty server would block once a pipe's buffer filled
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise ServerError(f"streamlit exited with {proc.returncode}: " + server_log(log.name)[-2000:])
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                if time.perf_counter() - start > timeout_s:
                    raise ServerError(f"streamlit was not healthy after {timeout_s:.0f} s") from None
                time.sleep(0.1)
        os.environ["VITCORE_SERVER_LOG"] = log.name  # where a harness finds what the server printed
        yield url, start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        os.unlink(log.name)


def server_log(path: str | None = None) -> str:
    """What the last server started here printed (its stdout and stderr), or ''."""
    path = path or os.environ.get("VITCORE_SERVER_LOG")
    try:
        return Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return ""
