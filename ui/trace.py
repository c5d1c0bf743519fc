"""An optional trace of the app's script runs for load tests: with ``VITCORE_TRACE=FILE`` set, each
event is appended to FILE as one JSON line (wall time, session, event, fields); otherwise nothing."""

from __future__ import annotations

import json
import os
import threading
import time

_lock = threading.Lock()


def trace(session: str, event: str, **fields: object) -> None:
    """Append one event to the trace file, if ``VITCORE_TRACE`` names one."""
    path = os.environ.get("VITCORE_TRACE")
    if not path:
        return
    line = json.dumps({"t": time.time(), "session": session, "event": event, **fields})
    with _lock, open(path, "a") as f:
        f.write(line + "\n")


def read_trace(path: str) -> list[dict]:
    """The events of a trace file, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
