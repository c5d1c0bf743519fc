"""Several users at once in a real browser: each opens the app, runs a method on its own class and toggles.

Every session is its own Chromium browser context (own cookies, own Streamlit session) in one headless
Chromium, all started together against one ``streamlit run app.py`` on loopback. Each session records
when its Model page became usable (title and the 32 gallery images drawn), its
circuit run, and for every toggle (one second apart, as a user reads the fast figures and clicks again,
while the slower figures of the last toggle may still be computing) the time from the click until the
new fast figures are drawn; at the end it waits for the exact figures. It also
checks that what it sees is its own: its class on the Prune page and its own kept count after each toggle.

Used by ``benchmarks/load_test.py`` (figures) and ``tests/test_load.py`` (no cross-talk). Needs
``playwright`` and a Chromium binary; never imports streamlit.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.appserver import app_server, server_log
from benchmarks.chaos import WorkerKiller
from benchmarks.cpu_accounting import CpuSampler
from ui.trace import read_trace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
KEPT = re.compile(r"(\d+)/(\d+) components kept")
FAST = re.compile(r"fast figures in ([\d.]+) s")


@dataclass
class SessionPlan:
    cls: str  # class name as the app lists it, e.g. "goldfish"
    method: str | None  # method label in the Method box, e.g. "EAP-IG"; "": the Model page only; None: no class
    toggles: list[str]  # head pills to click on the Prune page: "H3" (layer 0) or "L4.H3"


@dataclass
class SessionReport:
    plan: SessionPlan
    model_page_s: float = float("nan")  # from the session's first request to a usable Model page
    circuit_s: float = float("nan")  # Run pressed -> result shown
    prune_page_s: float = float("nan")  # link clicked -> fast figures shown
    toggle_s: list[float] = field(default_factory=list)  # click -> the new fast figures drawn
    toggle_server_s: list[float] = field(
        default_factory=list
    )  # of which the server computed the fast figures (the page's caption)
    toggle_clicked_at: list[float] = field(
        default_factory=list
    )  # wall clock (time.time) of each click, to align with the server's trace
    toggle_estimate_s: list[float] = field(
        default_factory=list
    )  # class pattern: click -> the all-class estimate (or the exact figure) shown
    toggle_exact_s: list[float] = field(default_factory=list)  # class pattern: click -> the exact all-class top-1 shown
    last_exact_at: float = float("nan")  # wall clock of the last exact figure (class pattern)
    kept_seen: list[int] = field(default_factory=list)  # kept count after the run, then after each toggle
    classes_caption: str = ""
    tracebacks: list[str] = field(default_factory=list)  # Python tracebacks the pages showed (first line each)
    errors: list[str] = field(default_factory=list)


# A class: six students, each toggling five heads of layer 0 and waiting for every figure after each toggle.
CLASS_PLANS = [
    SessionPlan("goldfish", "EAP", ["H0", "H3", "H5", "H7", "H9"]),
    SessionPlan("bullfrog", "EAP", ["H1", "H4", "H6", "H8", "H10"]),
    SessionPlan("lemon", "EAP", ["H2", "H7", "H0", "H11", "H4"]),
    SessionPlan("espresso", "EAP", ["H8", "H1", "H9", "H3", "H6"]),
    SessionPlan("volleyball", "EAP", ["H10", "H2", "H11", "H5", "H1"]),
    SessionPlan("German shepherd", "EAP", ["H11", "H5", "H3", "H9", "H2"]),
]

# Six students who open the Prune page without choosing a class, each toggling five heads spread over the layers and
# waiting for every figure after each toggle.
FREE_PLANS = [
    SessionPlan(p.cls, None, [f"L{(i + 2 * j) % 9}.H{(5 * i + j) % 12}" for j in range(5)])
    for i, p in enumerate(CLASS_PLANS)
]

# Six students opening the app at once, and nothing else.
OPEN_PLANS = [SessionPlan(p.cls, "", []) for p in CLASS_PLANS]

DEFAULT_PLANS = [
    SessionPlan("goldfish", "EAP", ["H0", "H3", "H5"]),
    SessionPlan("bullfrog", "EAP-IG", ["H1", "H4", "H6"]),
    SessionPlan("lemon", "LRP", ["H2", "H7", "H0"]),
    SessionPlan("espresso", "EAP", ["H8", "H1", "H9"]),
    SessionPlan("volleyball", "EAP-IG", ["H10", "H2", "H11"]),
    SessionPlan("German shepherd", "LRP", ["H11", "H5", "H3"]),
]


async def _wait_idle(page, timeout_ms: float) -> None:
    await page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )


async def _kept(page, timeout_ms: float, not_equal: int | None = None) -> tuple[int, str]:
    """The kept count in the fast figures' caption (waiting until it differs from ``not_equal``), and the caption."""
    caption = page.get_by_text(KEPT).first
    deadline = time.perf_counter() + timeout_ms / 1e3
    while True:
        try:
            text = await caption.inner_text(timeout=timeout_ms)
            m = KEPT.search(text)
        except Exception:  # the caption is being redrawn
            m = None
        if m and int(m.group(1)) != not_equal:
            return int(m.group(1)), text
        if time.perf_counter() > deadline:
            raise TimeoutError(f"kept count still {not_equal} after {timeout_ms / 1e3:.0f} s")
        await asyncio.sleep(0.02)


ALL_CLASSES = '[data-stale="false"] [data-testid="stMetric"]'  # drawn by the current run, not left over from the last
TRACEBACK = '[data-testid="stException"]'  # how Streamlit draws an exception that reached the page


async def _note_tracebacks(page, report: SessionReport) -> None:
    """Add any traceback the page shows now (its first line) to the report, once each."""
    for text in await page.locator(TRACEBACK).all_inner_texts():
        first = text.strip().splitlines()[0][:300] if text.strip() else "(empty)"
        if first not in report.tracebacks:
            report.tracebacks.append(first)


async def _all_class_times(page, t0: float, timeout_ms: float) -> tuple[float, float]:
    """Seconds from ``t0`` until this run's all-class top-1 shows an estimate (or the exact figure), and until exact."""
    metric = page.locator(ALL_CLASSES, has_text="Top-1, all eval classes").first
    estimate = exact = None
    deadline = time.perf_counter() + timeout_ms / 1e3
    while exact is None:
        try:
            text = await metric.inner_text(timeout=1000)
        except Exception:  # not drawn yet, or being redrawn
            text = ""
        now = time.perf_counter() - t0
        if "%" in text and estimate is None:
            estimate = now
        if "%" in text and "updating" not in text and "≈" not in text:
            exact = now
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no exact all-class top-1 after {timeout_ms / 1e3:.0f} s: {text!r}")
        await asyncio.sleep(0.05)
    return estimate, exact


async def _choose_class_and_run(page, plan: SessionPlan, report: SessionReport, timeout_ms: float) -> None:
    """Choose the plan's class on the Circuits page, run its method, and open the Prune page with the result."""
    from playwright.async_api import expect

    await page.get_by_role("link", name="Circuits").click()
    await expect(page.get_by_role("heading", name="Circuits")).to_be_visible(timeout=timeout_ms)
    box = page.get_by_role("combobox").first
    await box.click()
    await box.type(plan.cls)
    await page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(plan.cls)} \(")).first.click()
    await page.keyboard.press("Escape")
    await _wait_idle(page, timeout_ms)
    method_box = page.get_by_role("combobox", name="Method")
    await method_box.click()
    await page.get_by_role("option", name=plan.method, exact=True).click()
    await expect(method_box).to_have_value(plan.method)
    await _wait_idle(page, timeout_ms)
    t0 = time.perf_counter()
    await page.get_by_role("button", name="Run", exact=True).click()
    await expect(page.locator('[data-testid="stMetric"]', has_text="Kept")).to_be_visible(timeout=timeout_ms)
    report.circuit_s = time.perf_counter() - t0
    kept_text = await page.locator('[data-testid="stMetric"]', has_text="Kept").first.inner_text()
    expected = int(re.search(r"(\d+)/\d+", kept_text).group(1))

    t0 = time.perf_counter()
    await page.get_by_role("link", name="Prune").click()
    report.kept_seen.append((await _kept(page, timeout_ms))[0])
    report.prune_page_s = time.perf_counter() - t0
    report.classes_caption = await page.get_by_text("Chosen classes:").first.inner_text()
    if report.kept_seen[-1] != expected:
        report.errors.append(f"Prune page shows {report.kept_seen[-1]} kept, the session's run kept {expected}")
    await _wait_idle(page, timeout_ms)


async def _session(
    browser, url: str, report: SessionReport, timeout_ms: float, think_s: float = 1.0, wait_all: bool = False
) -> SessionReport:
    """Play ``report.plan`` in a browser context of its own, recording into ``report`` as it goes."""
    from playwright.async_api import expect

    plan = report.plan
    context = await browser.new_context(viewport={"width": 1500, "height": 1100})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        t0 = time.perf_counter()
        await page.goto(url)
        await expect(page.locator("h1", has_text="Model")).to_be_visible(timeout=timeout_ms)
        await expect(page.locator("img.gallery").nth(31)).to_be_visible(timeout=timeout_ms)
        report.model_page_s = time.perf_counter() - t0
        if plan.method == "":  # the open pattern: the Model page only
            return report
        if plan.method is None:  # straight to the Prune page, no class chosen
            t0 = time.perf_counter()
            await page.get_by_role("link", name="Prune").click()
            report.kept_seen.append((await _kept(page, timeout_ms))[0])
            report.prune_page_s = time.perf_counter() - t0
            await _wait_idle(page, timeout_ms)
        else:
            await _choose_class_and_run(page, plan, report, timeout_ms)

        for name in plan.toggles:
            layer, head = name.split(".") if "." in name else ("L0", name)
            pill = page.get_by_role("button", name=head, exact=True).nth(int(layer[1:]))  # that layer's head
            was_on = (await pill.get_attribute("aria-pressed")) == "true"
            before = report.kept_seen[-1]
            t0 = time.perf_counter()
            report.toggle_clicked_at.append(time.time())
            await pill.click()
            now, caption = await _kept(page, timeout_ms, not_equal=before)
            report.toggle_s.append(time.perf_counter() - t0)
            fast = FAST.search(caption)
            report.toggle_server_s.append(float(fast.group(1)) if fast else float("nan"))
            report.kept_seen.append(now)
            await _note_tracebacks(page, report)
            if now != before + (-1 if was_on else 1):
                report.errors.append(
                    f"toggling {name} ({'on' if was_on else 'off'} before) moved kept from {before} to {now}"
                )
            if wait_all:  # a student waits for every figure before the next toggle
                estimate, exact = await _all_class_times(page, t0, timeout_ms)
                report.toggle_estimate_s.append(estimate)
                report.toggle_exact_s.append(exact)
                report.last_exact_at = time.time()
                await _note_tracebacks(page, report)
            await asyncio.sleep(
                think_s
            )  # a user looks at the fast figures, then toggles again: the slower ones may still be running
        await _wait_idle(page, timeout_ms)
        all_classes = page.locator('[data-testid="stMetric"]', has_text="Top-1, all eval classes").first
        try:  # a fragment's run may not show Streamlit's status widget: wait for the figure itself
            await expect(all_classes).not_to_contain_text("updating", timeout=timeout_ms)
            await expect(all_classes).to_contain_text("%", timeout=timeout_ms)
        except AssertionError:
            report.errors.append(f"the exact all-class top-1 never arrived: {await all_classes.inner_text()!r}")
        if plan.method is not None and plan.cls not in report.classes_caption:
            report.errors.append(
                f"the Prune page names {report.classes_caption!r}, not this session's class {plan.cls!r}"
            )
        final = (await _kept(page, timeout_ms))[0]
        if final != report.kept_seen[-1]:
            report.errors.append(f"kept count changed to {final} without this session touching it")
    except Exception as e:  # noqa: BLE001 - a session's failure is part of the report
        report.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
    finally:
        try:
            await _note_tracebacks(page, report)
        except Exception:  # noqa: BLE001 - the page is gone: nothing more to see
            pass
        await context.close()
    return report


def niced_executable(executable: str, niceness: int, folder: Path) -> str:
    """A launcher that runs ``executable`` (and so every process it starts) at ``niceness``."""
    launcher = folder / "chromium-niced"
    launcher.write_text(f'#!/bin/sh\nexec nice -n {int(niceness)} "{executable}" "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


async def _run_all(
    url: str, plans: list[SessionPlan], timeout_s: float, chromium: str, wait_all: bool = False
) -> list[SessionReport]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        reports = [SessionReport(p) for p in plans]
        tasks = [asyncio.ensure_future(_session(browser, url, r, timeout_s * 1e3, wait_all=wait_all)) for r in reports]
        try:
            _, late = await asyncio.wait(tasks, timeout=timeout_s)
            for task in late:  # a session still waiting when the run's time is up: what it saw so far is kept
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=10)
            for report, task in zip(reports, tasks):
                if task in late:
                    report.errors.append(f"TimeoutError: the session had not finished after {timeout_s:.0f} s")
            return reports
        finally:
            await browser.close()


def _wait_for_event(trace_file: Path, event: str, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while not (trace_file.exists() and any(e["event"] == event for e in read_trace(str(trace_file)))):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the server traced no {event!r} in {timeout_s:.0f} s")
        time.sleep(0.2)


def server_times(events: list[dict]) -> dict:
    """From the server's trace: per session, its first run's start to the gallery drawn; and for every
    Prune fragment run, its start to the fast figures drawn (medians and maxima, seconds)."""
    first_run: dict[str, float] = {}
    gallery, fast = [], []
    prune_start: dict[str, float] = {}
    for e in events:
        s = e["session"]
        if e["event"] == "run":
            first_run.setdefault(s, e["t"])
        elif e["event"] == "gallery" and s in first_run:
            gallery.append(e["t"] - first_run[s])
            first_run[s] = float("inf")  # only the first gallery counts
        elif e["event"] == "prune_run":
            prune_start[s] = e["t"]
        elif e["event"] == "fast_drawn" and s in prune_start:
            fast.append(e["t"] - prune_start.pop(s))

    return {"first_run_to_gallery_s": _summary(gallery), "prune_run_to_fast_figures_s": _summary(fast)}


def _rate(reports: list[SessionReport]) -> float | None:
    """Toggles whose every figure arrived, per minute of the class's toggling (first click to last exact figure)."""
    starts = [r.toggle_clicked_at[0] for r in reports if r.toggle_clicked_at]
    ends = [r.last_exact_at for r in reports if r.last_exact_at == r.last_exact_at]
    done = sum(len(r.toggle_exact_s) for r in reports)
    return 60 * done / (max(ends) - min(starts)) if starts and ends and max(ends) > min(starts) else None


def _never_arrived(error: str) -> bool:
    """Whether a session's error is a figure it waited for in vain."""
    return "never arrived" in error or error.startswith("TimeoutError")


def _summary(xs: list[float]) -> dict:
    xs = [x for x in xs if x >= 0]
    return {"median": statistics.median(xs), "max": max(xs), "n": len(xs)} if xs else {"n": 0}


def toggle_breakdown(reports: list[SessionReport], events: list[dict], wnid_of: dict[str, str]) -> dict:
    """Each toggle split in three from the click's wall time and the server's trace: until the session's
    Prune fragment starts its run, that run until the fast figures are drawn, and from there until the
    browser shows them. A browser session is matched to its server session by its class."""
    waits, server, browser = [], [], []
    for r in reports:
        wnid = wnid_of.get(r.plan.cls)
        mine = [e for e in events if e["event"] in ("prune_run", "fast_drawn")]
        sessions = {e["session"] for e in mine if e["event"] == "prune_run" and wnid in e.get("classes", [])}
        mine = [e for e in mine if e["session"] in sessions]
        for clicked, took in zip(r.toggle_clicked_at, r.toggle_s):
            run = next((e for e in mine if e["event"] == "prune_run" and e["t"] >= clicked), None)
            drawn = next((e for e in mine if e["event"] == "fast_drawn" and run and e["t"] >= run["t"]), None)
            if run is None or drawn is None:
                continue
            waits.append(run["t"] - clicked)
            server.append(drawn["t"] - run["t"])
            browser.append(clicked + took - drawn["t"])
    return {
        "click_to_server_run_s": _summary(waits),
        "server_run_to_fast_drawn_s": _summary(server),
        "fast_drawn_to_browser_s": _summary(browser),
    }


def _wnids_by_name() -> dict[str, str]:
    """Class name as the app lists it -> wnid, for the bundled data set."""
    from vitcore.data import load_split

    data = load_split(None, "val")
    return {name: wnid for wnid, name in zip(data.wnids, data.names)}


def run_load_test(
    root: str | Path,
    plans: list[SessionPlan] | None = None,
    timeout_s: float = 480.0,
    chromium: str = CHROMIUM,
    server_args: tuple[str, ...] = (),
    browser_nice: int = 0,
    script: str = "serve.py",
    wait_all: bool = False,
    kill_worker_every_s: float | None = None,
) -> dict:
    """Start the app, run every plan's session at once, and summarise (medians over sessions and toggles).

    ``browser_nice`` > 0 runs the browsers at that niceness, so that the server has the CPU first, as it
    would when the users' browsers run on their own machines; 0 lets them compete with the server.
    With ``serve.py`` (the README's command) the sessions start once the server's start-up warm-up is
    done, as in a class that opens the app after the teacher has started it; ``app.py`` starts them at once.
    ``kill_worker_every_s`` kills a random compute worker that often while the sessions run
    (:class:`benchmarks.chaos.WorkerKiller`)."""
    plans = plans or DEFAULT_PLANS
    with tempfile.TemporaryDirectory() as tmp:
        trace_file = Path(tmp) / "trace.jsonl"
        os.environ["VITCORE_TRACE"] = str(trace_file)  # the server's own timings (ui/trace.py)
        try:
            with app_server(root, extra_args=server_args, script=script) as (url, start):
                server_ready_s = time.perf_counter() - start
                if script == "serve.py":
                    _wait_for_event(trace_file, "warm_done", timeout_s=180.0)
                warm_s = time.perf_counter() - start
                executable = niced_executable(chromium, browser_nice, Path(tmp)) if browser_nice else chromium
                killer = WorkerKiller(kill_worker_every_s) if kill_worker_every_s else nullcontext()
                with CpuSampler() as cpu, killer:
                    reports = asyncio.run(_run_all(url, plans, timeout_s, executable, wait_all))
                log = server_log()
        finally:
            os.environ.pop("VITCORE_TRACE", None)
        events = read_trace(str(trace_file)) if trace_file.exists() else []
    toggles = [t for r in reports for t in r.toggle_s]

    def med(xs):
        xs = [x for x in xs if x == x]
        return statistics.median(xs) if xs else float("nan")

    return {
        "sessions": len(reports),
        "script": script,
        "browser_nice": browser_nice,
        "server_ready_s": server_ready_s,
        "server_warm_s": warm_s,
        "cpu_core_s": cpu.summary(),  # who used the two cores during the sessions (benchmarks/cpu_accounting.py)
        "model_page_s": {"median": med([r.model_page_s for r in reports]), "max": max(r.model_page_s for r in reports)},
        "prune_page_s": {"median": med([r.prune_page_s for r in reports]), "max": max(r.prune_page_s for r in reports)},
        "circuit_s": {"median": med([r.circuit_s for r in reports]), "max": max(r.circuit_s for r in reports)},
        "toggle_fast_figures_s": {
            "median": med(toggles),
            "max": max(toggles) if toggles else float("nan"),
            "n": len(toggles),
        },
        "toggle_fast_figures_server_s": {"median": med([t for r in reports for t in r.toggle_server_s])},
        "toggle_estimate_s": _summary([t for r in reports for t in r.toggle_estimate_s]),
        "toggle_exact_s": _summary([t for r in reports for t in r.toggle_exact_s]),
        "pattern": (
            ("free (no class chosen; " if plans and plans[0].method is None else "class (")
            + "every figure awaited after each toggle)"
        )
        if wait_all
        else "click (a toggle a second)",
        "fully_evaluated_toggles_per_minute": _rate(reports) if wait_all else None,
        "server": server_times(events),
        "toggle_breakdown": toggle_breakdown(reports, events, _wnids_by_name()),
        "errors": [e for r in reports for e in r.errors],
        "kill_worker_every_s": kill_worker_every_s,
        "workers_killed": [list(k) for k in killer.kills] if isinstance(killer, WorkerKiller) else [],
        "tracebacks_seen": [t for r in reports for t in r.tracebacks],
        "server_tracebacks": log.count("Traceback (most recent call last)"),
        "server_log_tail": log[-4000:],
        "figures_never_arrived": sum(_never_arrived(e) for r in reports for e in r.errors),
        "reports": [asdict(r) for r in reports],
        "trace": events,
    }
