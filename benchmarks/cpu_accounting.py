"""Who used the CPU during a benchmark: the app server, its worker processes, the browsers, the rest (Linux /proc).

Processes are sampled every ``period_s`` so that short-lived ones (a browser tab's renderer) are counted up
to their last sample; the machine's total comes from /proc/stat.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
KINDS = (("vitcore.compute.workers", "workers"), ("streamlit", "server"), ("chrom", "browsers"))


def _machine_busy_s() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICK


def _processes() -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds so far) for the processes of interest."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = next((k for needle, k in KINDS if needle in cmdline), None)
        if kind is not None:
            found[int(entry.name)] = (kind, (int(stat[11]) + int(stat[12])) / TICK)
    return found


class CpuSampler:
    """``with CpuSampler() as cpu: ...`` then ``cpu.summary()``: core-seconds per kind during the block."""

    def __init__(self, period_s: float = 0.25):
        self.period_s = period_s
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for pid, (kind, cpu) in _processes().items():
            self._first.setdefault(pid, cpu if pid in self._baseline else 0.0)
            self._last[pid] = (kind, cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self._baseline = set(_processes())  # processes that existed before: only their CPU from now counts
        self._busy0 = _machine_busy_s()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._busy = _machine_busy_s() - self._busy0

    def summary(self) -> dict[str, float]:
        out = {"machine": round(self._busy, 2)}
        for pid, (kind, cpu) in self._last.items():
            out[kind] = round(out.get(kind, 0.0) + cpu - self._first[pid], 2)
        out["other"] = round(out["machine"] - sum(v for k, v in out.items() if k != "machine"), 2)
        return out
