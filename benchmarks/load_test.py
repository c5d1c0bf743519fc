"""Six users at once: `streamlit run app.py` on loopback, six headless Chromium sessions started together,
each opening the Model page, running a method on its own class and toggling three heads on the Prune page.

Reports per session and as medians: Model page usable (title and the 32 gallery images drawn), circuit
run, Prune page, and each toggle's time from the click until the new fast figures are drawn; and any
cross-talk found (see benchmarks/loadtest.py).

Run: python benchmarks/load_test.py [--sessions 6] [--browser-nice 19] [--script serve.py|app.py]
       [--pattern click|class|free|open] [--kill-worker-every S] [--out docs/measurements/load_test.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the harness is a package beside it

from benchmarks.loadtest import CLASS_PLANS, DEFAULT_PLANS, FREE_PLANS, OPEN_PLANS, run_load_test  # noqa: E402
from vitcore.measurement import write_measurement  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=6, help=f"at most {len(DEFAULT_PLANS)}")
    p.add_argument("--timeout", type=float, default=540.0, help="seconds for the whole run")
    p.add_argument(
        "--browser-nice",
        type=int,
        default=0,
        help="run the browsers at this niceness (e.g. 19: the server gets the CPU first, as when the "
        "browsers run on the users' own machines)",
    )
    p.add_argument(
        "--script",
        default="serve.py",
        choices=["serve.py", "app.py"],
        help="serve.py (the README's command): sessions start after its start-up warm-up; app.py: no "
        "warm-up, sessions start at once",
    )
    p.add_argument(
        "--pattern",
        default="click",
        choices=["click", "class", "free", "open"],
        help="click: a toggle a second, waiting for the fast figures only; class: a circuit run on a class, then "
        "five toggles of layer 0, every figure awaited each time; free: no class chosen, straight to the Prune page, "
        "five toggles spread over the layers, every figure awaited; open: the Model page only",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="the checkout of the app to serve (default: this one; e.g. a `git worktree` of an earlier "
        "commit, to measure before a change)",
    )
    p.add_argument(
        "--kill-worker-every",
        type=float,
        metavar="S",
        help="chaos: SIGKILL a random compute worker of the server every S seconds while the sessions run, and "
        "count the tracebacks the pages show and the figures that never arrive",
    )
    p.add_argument(
        "--out", type=Path, help="also write the figures here as a measurement file (command, machine, date)"
    )
    args = p.parse_args()
    plans = {"class": CLASS_PLANS, "free": FREE_PLANS, "open": OPEN_PLANS, "click": DEFAULT_PLANS}[args.pattern]
    plans = plans[: args.sessions]
    out = run_load_test(
        args.root,
        plans,
        timeout_s=args.timeout,
        browser_nice=args.browser_nice,
        script=args.script,
        wait_all=args.pattern in ("class", "free"),
        kill_worker_every_s=args.kill_worker_every,
    )
    out["commit"] = subprocess.run(
        ["git", "-C", str(args.root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if args.out:
        write_measurement(args.out, out)
    print(json.dumps({k: v for k, v in out.items() if k not in ("reports", "trace")}, indent=1))


if __name__ == "__main__":
    main()
