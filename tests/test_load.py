"""Three users at once in headless Chromium: each session's classes, keep-set and figures stay its own.

The six-user load and its timings are the benchmark's (benchmarks/load_test.py); three sessions, one per
method, keep CI within its time on the slower 2-core machines (the six-session test took 447 s there)."""

from pathlib import Path

import pytest
from conftest import ROOT

from benchmarks.loadtest import CHROMIUM, DEFAULT_PLANS, run_load_test

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (.ci/run installs it)"),
]


def test_three_sessions_at_once_see_only_their_own_work():
    plans = DEFAULT_PLANS[:3]  # EAP, EAP-IG and LRP, three classes
    out = run_load_test(ROOT, plans, timeout_s=480)  # times are the benchmark's business (benchmarks/load_test.py)
    print({k: v for k, v in out.items() if k != "reports"})
    assert out["errors"] == []
    reports = out["reports"]
    assert len(reports) == 3 and len({r["plan"]["cls"] for r in reports}) == 3
    for r in reports:
        assert len(r["toggle_s"]) == len(r["plan"]["toggles"]) == 3
        assert r["plan"]["cls"] in r["classes_caption"]
        assert not any(
            other["plan"]["cls"] in r["classes_caption"] for other in reports if other is not r
        )  # no other session's class
        steps = [b - a for a, b in zip(r["kept_seen"], r["kept_seen"][1:])]
        assert all(abs(s) == 1 for s in steps)  # each toggle moved this session's own count by exactly one
