"""Start-up warm-up (serve.py) and the server trace the load test reads."""

import json

import torch

from benchmarks.loadtest import server_times
from ui.trace import read_trace, trace
from vitcore.data import normalize


def test_the_warm_up_fills_the_caches_that_sessions_read_so_they_run_no_forward():
    from ui import resources as common
    from ui.gallery import GALLERY_SIZE, gallery_html
    from ui.warmup import warm_shared_resources

    warm_shared_resources()
    ckpt = common.shared_checkpoint(None)
    eval_set = common.shared_split(None, "val")
    forwards = []
    handle = ckpt.model.register_forward_pre_hook(lambda module, args: forwards.append(len(args[0])))
    try:
        logits = common.shared_eval_logits(
            ckpt.model, eval_set, ckpt.sha256, "bundled"
        )  # what a session's first pages ask for
        html = gallery_html(ckpt.model, eval_set, ckpt.sha256, "bundled", tuple(range(GALLERY_SIZE)))
        common.shared_latency_model(ckpt.model, ckpt.sha256)
    finally:
        handle.remove()
    assert forwards == []  # all three came from the caches the warm-up filled
    assert common.shared_checkpoint(None) is ckpt and html.count('class="gallery"') == GALLERY_SIZE
    with torch.inference_mode():  # the cached logits are the model's: an independent forward on a few images
        direct = ckpt.model(normalize(eval_set.images[:16], ckpt.model.config))
    assert torch.allclose(logits[:16], direct, atol=1e-4)


def test_the_warm_up_imports_every_module_the_pages_import_in_a_fresh_interpreter():
    import subprocess
    import sys

    # a fresh interpreter: this test process has imported most of them already
    code = (
        "import sys; from ui.warmup import import_page_modules; names = import_page_modules(); "
        "print(len(names), all(n in sys.modules for n in names), 'altair' in names, 'pandas' in names)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 10 and out[1:] == ["True", "True", "True"]


def test_trace_writes_only_when_asked_and_server_times_pairs_each_sessions_events(tmp_path, monkeypatch):
    path = tmp_path / "trace.jsonl"
    monkeypatch.delenv("VITCORE_TRACE", raising=False)
    trace("s1", "run")
    assert not path.exists()
    monkeypatch.setenv("VITCORE_TRACE", str(path))
    trace("s1", "run", page="Model")
    assert read_trace(str(path))[0]["page"] == "Model"
    # two sessions, by hand: gallery 1.5 s and 2.0 s after each one's first run;
    # fragment runs 0.25 s and 0.5 s to the fast figures
    events = [
        {"t": 10.0, "session": "a", "event": "run"},
        {"t": 10.5, "session": "b", "event": "run"},
        {"t": 11.5, "session": "a", "event": "gallery"},
        {"t": 12.5, "session": "b", "event": "gallery"},
        {"t": 13.0, "session": "a", "event": "run"},
        {"t": 14.0, "session": "a", "event": "gallery"},  # a later visit: not a first page
        {"t": 20.0, "session": "a", "event": "prune_run"},
        {"t": 20.25, "session": "a", "event": "fast_drawn"},
        {"t": 21.0, "session": "b", "event": "prune_run"},
        {"t": 21.5, "session": "b", "event": "fast_drawn"},
    ]
    out = server_times(json.loads(json.dumps(events)))
    assert out["first_run_to_gallery_s"] == {"median": 1.75, "max": 2.0, "n": 2}
    assert out["prune_run_to_fast_figures_s"] == {"median": 0.375, "max": 0.5, "n": 2}


def test_toggle_breakdown_splits_each_click_between_waiting_server_and_browser():
    from benchmarks.loadtest import SessionPlan, SessionReport, toggle_breakdown

    report = SessionReport(SessionPlan("goldfish", "EAP", ["H0", "H1"]))
    report.toggle_clicked_at, report.toggle_s = [100.0, 105.0], [2.0, 1.0]
    events = [  # by hand: "a" is goldfish's session, "b" another class's, with runs at the same moments
        {"t": 100.5, "session": "b", "event": "prune_run", "classes": ["n02"]},
        {"t": 100.6, "session": "b", "event": "fast_drawn"},
        {"t": 100.25, "session": "a", "event": "prune_run", "classes": ["n01"]},
        {"t": 101.0, "session": "a", "event": "fast_drawn"},
        {"t": 105.5, "session": "a", "event": "prune_run", "classes": ["n01"]},
        {"t": 105.75, "session": "a", "event": "fast_drawn"},
    ]
    events.sort(key=lambda e: e["t"])
    out = toggle_breakdown([report], events, {"goldfish": "n01"})
    # click 1: run starts 0.25 s later, fast figures 0.75 s into it, the browser shows them 1.0 s after that
    # click 2: 0.5 s, 0.25 s, 0.25 s
    assert out["click_to_server_run_s"] == {"median": 0.375, "max": 0.5, "n": 2}
    assert out["server_run_to_fast_drawn_s"] == {"median": 0.5, "max": 0.75, "n": 2}
    assert out["fast_drawn_to_browser_s"] == {"median": 0.625, "max": 1.0, "n": 2}
