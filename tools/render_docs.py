"""Render the docs' generated pages: the results pages from the measurement files (never retype a figure)
and the command-line reference from the argparse parser.

Run: python tools/render_docs.py [--check]
--check exits 1 when a page differs from what its sources render, or when a measurement file is on no page
(CI runs it through the tests).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitcore.circuits.methods import GROUND_TRUTH, METHODS  # noqa: E402
from vitcore.circuits.trust import (  # noqa: E402
    FAST_SAMPLE,
    SHARED_METRIC,
    TOP_K,
    affordable,
    most_faithful,
    parse_entry,
    summarise,
    trusted,
)

DOCS = ROOT / "docs" / "results"
MEASUREMENTS = ROOT / "docs" / "measurements"
HEADER = (
    "Rendered by `python tools/render_docs.py` from the measurement files named under each table; do not edit by hand."
)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _measurement(name: str) -> tuple[Path, dict | None]:
    """A file of docs/measurements and its record (None when it is not there)."""
    path = ROOT / "docs" / "measurements" / name
    return path, _read(path)


def _source(record: dict, path: Path) -> str:
    m = record["machine"]
    where = (
        f"{m['cpu']} ({m['cores']} cores, torch {m['torch']}, {m['torch_threads']} threads)"
        if "cores" in m
        else f"{m['cpu']} (machine described {m['recorded']})"
    )
    model = f" Model: {record['model']}." if record.get("model") else ""
    return f"Measured {record['date']} with `{record['command']}` on {where}; file `{path.relative_to(ROOT)}`.{model}"


def cell(stat: dict) -> str:
    """A benchmark's summary as a table cell: median / max seconds."""
    return f"{stat['median']:.2f} / {stat['max']:.2f}" if stat and "median" in stat else "n/a"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def faithfulness_section() -> list[str]:
    path = ROOT / "assets" / "faithfulness.json"
    record = _read(path)
    if record is None:
        return []
    rows = record["results"]
    sets = sorted({", ".join(r["classes"]) for r in rows})
    top = f"top{TOP_K}"
    lines = [
        "## How far each method's scores can be trusted",
        "",
        "Each method at node level with its default setting, on the shipped model, over "
        f"{len(sets)} class sets of {rows[0]['images']} discovery images each ({'; '.join(sets)}), resample "
        "corruption; the first three sets are fixed, the others drawn with a fixed seed. Every method is judged "
        "against exact patching: each component removed alone, the change of the same metric measured on the same "
        f"images. *Spearman*: rank correlation of the scores the method ranks by with the magnitude of the exact "
        f"effect; *top {TOP_K}*: how many of its {TOP_K} highest are exact patching's {TOP_K} highest. An entry "
        "*(N images)* runs the method on the first N of a set's images and is still judged on all of them. *KL* and "
        "*top-1*: the patched circuit that keeps the top 25/50/75% of the scores, on the same images. *Ranks by*: "
        "what the method's order means (magnitude: a component that moves the metric either way matters). Medians "
        "over the class sets, with the lowest and highest in brackets; *wall s* is one run over the set's images on "
        "two threads.",
        "",
    ]
    for role, title in (("own", "On each method's own metric"), ("shared", f"On one shared metric ({SHARED_METRIC})")):
        summary = summarise(rows, role)
        if not summary:
            continue
        lines += [f"### {title}", ""]
        lines += _table(
            [
                "method",
                "metric",
                "ranks by",
                "Spearman",
                f"top {TOP_K}",
                "KL @25%",
                "KL @50%",
                "KL @75%",
                "top-1 @50%",
                "wall s",
            ],
            [
                [
                    next(x["label"] for x in rows if x.get("entry", x["method"]) == name),
                    METHODS[parse_entry(name)[0]].default_metric if role == "own" else SHARED_METRIC,
                    METHODS[parse_entry(name)[0]].ranks_by,
                    f"{r['spearman']:.3f} [{r['spearman_min']:.2f}, {r['spearman_max']:.2f}]",
                    f"{r[top]:.0f} [{r[top + '_min']:.0f}, {r[top + '_max']:.0f}]",
                    f"{r['kl_at_0.25']:.3f}",
                    f"{r['kl_at_0.5']:.3f} [{r['kl_at_0.5_min']:.2f}, {r['kl_at_0.5_max']:.2f}]",
                    f"{r['kl_at_0.75']:.3f}",
                    f"{r['top1_at_0.5']:.3f}",
                    f"{r['wall_s']:.2f}",
                ]
                for name, r in summary.items()
            ],
        )
        lines.append("")
    own, shared = summarise(rows), summarise(rows, "shared")
    fast = f"{GROUND_TRUTH}@{FAST_SAMPLE}"
    if fast in own and {"eap", "eap-ig", "atp-star", "learned"} <= set(own):
        gradient = [own[m]["spearman"] for m in ("eap", "atp-star", "eap-ig", "relp", "lrp") if m in own]
        lines += [
            "What the table says:",
            "",
            "- Of the entries that score 50 images within two seconds, those that reach the bar of Spearman 0.8 and "
            f"16 of the top {TOP_K}: "
            + (
                ", ".join(
                    f"{m} (Spearman {own[m]['spearman']:.2f}, {own[m][top]:.0f} of {TOP_K}, {own[m]['wall_s']:.2f} s)"
                    for m in affordable(own)
                    if trusted(own[m])
                )
                or "none"
            )
            + f"; the gradient estimates stay between Spearman {min(gradient):.2f} and {max(gradient):.2f}.",
            f"- AtP*'s GradDrop moves EAP's Spearman from {own['eap']['spearman']:.2f} to "
            f"{own['atp-star']['spearman']:.2f} here, at {own['atp-star']['wall_s'] / own['eap']['wall_s']:.0f} "
            "times the time.",
            f"- Agreeing with single-component effects is not the same as choosing the best circuit: keeping the top "
            f"half by exact patching gives KL {own[GROUND_TRUTH]['kl_at_0.5']:.2f}, by EAP-IG "
            f"{own['eap-ig']['kl_at_0.5']:.2f}, by learned masks {own['learned']['kl_at_0.5']:.2f}, whose gates agree "
            f"least with single effects (Spearman {own['learned']['spearman']:.2f}). Components matter together; "
            "a circuit is best chosen by a method that optimises the set.",
            *(
                [
                    f"- On cross-entropy, exact patching on {FAST_SAMPLE} images agrees with all of them only at "
                    f"Spearman {shared[fast]['spearman']:.2f} (on KL {own[fast]['spearman']:.2f}): a sample that "
                    "serves for KL does not serve for every metric.",
                ]
                if fast in shared
                else []
            ),
            "",
        ]
    pick = most_faithful(own)
    if pick:
        lines += [
            f"The app's default follows from this table (`trust.most_faithful`): **{pick}**, of the entries that score "
            "50 images within 2 s the one with the lowest sum of its rank by Spearman and its rank by KL at 50% kept.",
            "",
        ]
    return lines + [_source(record, path), ""]


def exact_cost_section() -> list[str]:
    path = ROOT / "docs" / "measurements" / "bench_exact.json"
    record = _read(path)
    if record is None:
        return []
    rows = record["results"]
    lines = [
        "## What exact patching costs",
        "",
        f"One class of {rows[0]['images']} val images (resample corruption, KL), medians of timed runs side by side "
        "in one process: exact patching over all of them (each candidate from its own sublayer, batched), the naive "
        "loop it replaced (one masked forward of the whole model per component; the largest difference of the two "
        f"is shown), exact patching over the first {FAST_SAMPLE} images, EAP and EAP-IG (5 steps), and how each fast "
        "ranking agrees with exact patching over all the images (EAP on cross-entropy, which it can score).",
        "",
    ]
    lines += _table(
        [
            "class",
            "one forward s",
            "exact s",
            "naive s",
            "max diff",
            f"exact ({FAST_SAMPLE} images) s",
            "its Spearman / top 20",
            "EAP s",
            "its Spearman / top 20",
            "EAP-IG s",
            "its Spearman / top 20",
        ],
        [
            [
                r["class"],
                f"{r['forward_s']:.3f}",
                f"{r['exact_s']:.2f}",
                f"{r['naive_s']:.2f}",
                f"{r['naive_max_difference']:.1e}",
                f"{r[f'exact_{FAST_SAMPLE}_s']:.2f}",
                f"{r[f'exact_{FAST_SAMPLE}_spearman']:.3f} / {r[f'exact_{FAST_SAMPLE}_top20']}",
                f"{r['eap_s']:.2f}",
                f"{r['eap_spearman']:.3f} / {r['eap_top20']}",
                f"{r['eap_ig_s']:.2f}",
                f"{r['eap_ig_spearman']:.3f} / {r['eap_ig_top20']}",
            ]
            for r in rows
        ],
    )
    return lines + ["", _source(record, path), ""]


def learned_section() -> list[str]:
    paths = sorted((ROOT / "docs" / "measurements").glob("bench_learned_target*.json"))
    if not paths:
        return []
    records = [(p, _read(p)) for p in paths]
    lines = [
        "## Learned masks reach their sparsity target",
        "",
        "Expected sparsity at the end of the default step budget, per seed, for each way of holding the target "
        "(goldfish, fire salamander, bullfrog; resample corruption). The kept circuit is always the top (1 - target) "
        "of the gates, so its size is exact either way; *KL* is that circuit's, patched, on the discovery images.",
        "",
    ]
    lines += _table(
        [
            "granularity",
            "constraint",
            "target",
            "steps",
            "images",
            "expected sparsity per seed",
            "max error",
            "KL (median)",
            "top-1 (median)",
        ],
        [
            [
                r["granularity"],
                r["constraint"],
                f"{r['target']:g}",
                str(r["steps"]),
                str(r["n_images"]),
                ", ".join(f"{x['expected_sparsity']:.3f}" for x in r["runs"]),
                f"{r['max_abs_error']:.3f}",
                f"{r['kl_median']:.3f}",
                f"{r['top1_median']:.3f}",
            ]
            for _, record in records
            for r in record["results"]
        ],
    )
    return lines + [""] + [line for path, record in records for line in (_source(record, path), "")]


def acdc_section() -> list[str]:
    path = ROOT / "docs" / "measurements" / "bench_acdc_cache.json"
    record = _read(path)
    if record is None:
        return []
    r = record["results"]
    eq = r["forward_equivalents"]
    return [
        "## ACDC's layer cache",
        "",
        f"tau {r['tau']:g}, {r['images']} images, runs alternated, medians: the cached search "
        f"{r['cached_median_s']:.2f} s, "
        f"naive loop {r['naive_median_s']:.2f} s, a speed-up of {r['speedup']:.2f}x with the same removed set: "
        f"{r['same_removed_set']}. "
        f"In full-forward equivalents the cached search runs {eq['cached']:g} and the naive loop {eq['naive']:g}, a "
        "ratio of "
        f"{r['layer_work_ratio']:.2f}: the most the cache can save while each candidate must still run the layers "
        "after it.",
        "",
        _source(record, path),
        "",
    ]


def atlas_section() -> list[str]:
    paths = sorted((ROOT / "docs" / "measurements").glob("atlas_groups_*.json"))
    records = [(p, _read(p)) for p in paths]
    if not records:
        return []
    lines = [
        "## Do related classes share circuits? (the atlas)",
        "",
        "For hand-picked groups of related classes, the mean Jaccard overlap of their circuits in the atlas, and the "
        "share "
        "of 2,000 random groups of the same size whose overlap is at least as high (small = the group stands out).",
        "",
        "| atlas method | all pairs: mean (min-max) | "
        + " | ".join(f"{g}" for g in records[0][1]["results"]["groups"])
        + " |",
        "|---|---|" + "---|" * len(records[0][1]["results"]["groups"]),
    ]
    for _path, record in records:
        r = record["results"]
        cells = [f"{g['within']:.3f} (p {g['p_random_at_least']:.2f})" for g in r["groups"].values()]
        label = METHODS[r["method"]].label if r["method"] in METHODS else r["method"]
        lines.append(
            f"| {label} | {r['mean_overlap_all_pairs']:.3f} ({r['min_overlap']:.2f}-{r['max_overlap']:.2f}) | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("")
    for path, record in records:
        r = record["results"]
        pairs = "; ".join(f"{p['a']} / {p['b']} {p['jaccard']:.2f}" for p in r["top_pairs"][:5])
        lines += [f"Most similar pairs ({r['method']}): {pairs}.", "", _source(record, path), ""]
    return lines


def seed_study_section() -> list[str]:
    path, record = _measurement("seed_study_full_val.json")
    if record is None:
        return []
    rows = record["results"]["rows"]
    base = next(r for r in rows if r["method"] == "baseline")
    n_eval = record["results"]["chosen_eval_images"]

    def size(r):
        return int(r["kept_heads"] + r["kept_chunks"])

    pairs = {}
    for r in rows:
        if r["method"] != "baseline":
            pairs.setdefault((r["method"], r["setting"]), {})[bool(r["finetuned"])] = r
    lines = [
        "## The seed study's finding, re-tested on the full val split",
        "",
        "The seed study found EAP ahead of ACDC at matched circuit size on well-trained models, with ACDC catching up "
        "after "
        "fine-tuning. Every method's sweep settings on goldfish, fire salamander and bullfrog, evaluated on the full "
        "val split "
        f"({n_eval} chosen-class images: one image is {100 / n_eval:.2f} points), before and after 20 fine-tuning "
        "steps; the "
        f"full model scores {base['top1_chosen']:.3f} on these images.",
        "",
        "| method | setting | components kept | top-1 chosen | after fine-tuning | KL | KL after fine-tuning |",
        "|---|---|---|---|---|---|---|",
    ]
    for (method, setting), both in pairs.items():
        a, b = both.get(False), both.get(True)
        label = METHODS[method].setting_label(setting) if method in METHODS else f"{method} {setting}"
        lines.append(
            f"| {METHODS[method].label} | {label} | {size(a)} | {a['top1_chosen']:.3f} | {b['top1_chosen']:.3f} | "
            f"{a['kl']:.3f} | {b['kl']:.3f} |"
        )
    threshold = [k for k in pairs if k[0] in METHODS and METHODS[k[0]].threshold_scores]
    if threshold:
        ref_key = min(threshold, key=lambda k: k[1])  # the threshold method's smallest setting: its largest circuit
        ref = pairs[ref_key]
        lines += [
            "",
            f"Matched against {METHODS[ref_key[0]].setting_label(ref_key[1])} ({size(ref[False])} components), each "
            "other "
            "method's setting with the closest circuit size:",
            "",
            "| method | setting | components | top-1 chosen: circuit - reference | after fine-tuning | KL: circuit - "
            "reference | after fine-tuning |",
            "|---|---|---|---|---|---|---|",
        ]
        for method in dict.fromkeys(k[0] for k in pairs):
            if method == ref_key[0]:
                continue
            key = min((k for k in pairs if k[0] == method), key=lambda k: abs(size(pairs[k][False]) - size(ref[False])))
            a, b = pairs[key][False], pairs[key][True]
            lines.append(
                f"| {METHODS[method].label} | {METHODS[method].setting_label(key[1])} | {size(a)} | "
                f"{a['top1_chosen'] - ref[False]['top1_chosen']:+.3f} "
                f"({round((a['top1_chosen'] - ref[False]['top1_chosen']) * n_eval):+d} images) | "
                f"{b['top1_chosen'] - ref[True]['top1_chosen']:+.3f} "
                f"({round((b['top1_chosen'] - ref[True]['top1_chosen']) * n_eval):+d} images) | "
                f"{a['kl'] - ref[False]['kl']:+.3f} | {b['kl'] - ref[True]['kl']:+.3f} |"
            )
    return lines + ["", _source(record, path), ""]


CLASS_TARGETS = {  # issue 37: six sessions at the lowest CPU priority on this 2-core machine, each toggling five heads
    "model_page_s": ("Model page usable", "≤ 8 s median"),
    "toggle_fast_figures_s": ("top figures after a toggle", "≤ 1.5 s median, ≤ 3 s max"),
    "toggle_estimate_s": ("all-class estimate after a toggle", "≤ 6 s median"),
    "toggle_exact_s": ("exact all-class top-1 after a toggle", "≤ 20 s median"),
    "circuit_s": ("EAP on the session's class (Run to result)", "none set"),
}


CLASS_RUNS = ["before", "after", "with_views", "service_run1", "service_run2"]  # the columns, oldest first


FAULT_RUNS = {"none": "undisturbed", "kill30": "a worker killed every 30 s"}  # load_test_faults_<name>.json


FREE_RUNS = ["before", "after"]  # load_test_free_<name>.json: the class pattern with no class chosen


def free_section() -> list[str]:
    """Students who open the Prune page without choosing a class (``--pattern free``), before and after the fast
    tier's fixed budget of images."""
    runs = [(name, *_measurement(f"load_test_free_{name}.json")) for name in FREE_RUNS]
    runs = [(name, p, r) for name, p, r in runs if r is not None]
    if not runs:
        return []
    lines = [
        "## No class chosen",
        "",
        "Six sessions that open the Prune page without choosing a class and toggle five heads each, spread over the "
        "layers, waiting for every figure after each toggle (`--pattern free`, `benchmarks/loadtest.py`, "
        "`FREE_PLANS`; browsers at niceness 19). Seconds, median / max over the 30 toggles; the first toggle of each "
        "session on its own row.",
        "",
    ]

    def first_toggles(r: dict) -> dict:
        firsts = [rep["toggle_s"][0] for rep in r["results"]["reports"] if rep["toggle_s"]]
        return {"median": statistics.median(firsts), "max": max(firsts)} if firsts else {}

    header = ["figure", "target"] + [f"{name} ({r['results'].get('commit', '?')})" for name, _, r in runs]
    rows = [
        [CLASS_TARGETS[key][0], CLASS_TARGETS[key][1]] + [cell(r["results"].get(key, {})) for _, _, r in runs]
        for key in ("model_page_s", "toggle_fast_figures_s", "toggle_estimate_s", "toggle_exact_s")
    ]
    rows.insert(2, ["first toggle's top figures", "≤ 3 s max"] + [cell(first_toggles(r)) for _, _, r in runs])
    rows.append(["errors seen by the sessions", "none"] + [str(len(r["results"]["errors"])) for _, _, r in runs])
    lines += _table(header, rows)
    lines += [""] + [f"- {name}: " + _source(r, p) for name, p, r in runs] + [""]
    lines += [
        "*before* serves the app as it was before the change (`git worktree add /tmp/before55 <commit>`, then "
        "`--root /tmp/before55`): with no class chosen, the fast figures ran on the whole 400-image stratified sample, "
        "as a job queued behind every session's work. *after* runs them on a fixed draw of "
        "`FAST_BUDGET` images over every class (`vitcore/compute/figures.py`) in the session's own thread; the "
        "400-image sample comes with the all-class estimate.",
        "",
    ]
    return lines


def faults_section() -> list[str]:
    """The class pattern with and without compute workers killed on purpose (``--kill-worker-every``)."""
    runs = [(label, *_measurement(f"load_test_faults_{name}.json")) for name, label in FAULT_RUNS.items()]
    runs = [(label, p, r) for label, p, r in runs if r is not None]
    if not runs:
        return []
    lines = [
        "## Faults survived",
        "",
        "The class pattern above, once undisturbed and once with a random compute worker killed (SIGKILL, as the "
        "kernel's OOM killer would) every 30 seconds while the sessions run (`benchmarks/chaos.py`). A killed "
        "worker is replaced and the job it ran runs again on the new one (`vitcore/compute/workers.py`). Seconds, "
        "median / max over the toggles; the counts are over all six sessions.",
        "",
    ]

    header = ["figure"] + [f"{label} ({r['results'].get('commit', '?')})" for label, _, r in runs]
    rows = [
        [CLASS_TARGETS[key][0]] + [cell(r["results"].get(key, {})) for _, _, r in runs]
        for key in ("toggle_fast_figures_s", "toggle_estimate_s", "toggle_exact_s")
    ]
    rows += [
        ["workers killed"] + [str(len(r["results"].get("workers_killed", []))) for _, _, r in runs],
        ["tracebacks shown by a page (target 0)"]
        + [str(len(r["results"].get("tracebacks_seen", []))) for _, _, r in runs],
        ["figures that never arrived (target 0)"]
        + [str(r["results"].get("figures_never_arrived", "n/a")) for _, _, r in runs],
        ["other errors seen by the sessions"]
        + [str(len(r["results"]["errors"]) - r["results"].get("figures_never_arrived", 0)) for _, _, r in runs],
    ]
    lines += _table(header, rows)
    lines += [""] + [f"- {label}: " + _source(r, p) for label, p, r in runs] + [""]
    return lines


def class_section() -> list[str]:
    runs = [_measurement(f"load_test_class_{name}.json") for name in CLASS_RUNS]
    runs = [(p, r) for p, r in runs if r is not None]
    if not runs:
        return []
    lines = [
        "# A class at once: measured",
        "",
        "Rendered by `python tools/render_docs.py` from the measurement files named below; do not edit by hand.",
        "",
        "Six Chromium sessions at niceness 19 (the server gets the CPU first, as when students' browsers run on their "
        "own "
        "machines) against one `streamlit run serve.py` on this machine. Each session opens the Model page, runs EAP "
        "on its own "
        "class, opens the Prune page and toggles five heads of layer 0, waiting after each toggle until the exact "
        "all-class "
        "top-1 is shown (`benchmarks/loadtest.py`, `CLASS_PLANS`). Seconds, median / max over sessions (or over the "
        "30 toggles).",
        "",
    ]
    header = ["figure", "target"] + [
        f"{p.stem.removeprefix('load_test_class_')} ({r['results'].get('commit', '?')})" for p, r in runs
    ]

    rows = [
        [label, target] + [cell(r["results"].get(key, {})) for _, r in runs]
        for key, (label, target) in CLASS_TARGETS.items()
    ]
    rows.append(
        ["fully evaluated toggles per minute", "—"]
        + [
            f"{r['results']['fully_evaluated_toggles_per_minute']:.1f}"
            if r["results"].get("fully_evaluated_toggles_per_minute")
            else "n/a"
            for _, r in runs
        ]
    )
    rows.append(
        ["cross-talk or errors seen by the sessions", "none"] + [str(len(r["results"]["errors"])) for _, r in runs]
    )
    lines += _table(header, rows)
    lines += [""] + [f"- {p.stem.removeprefix('load_test_class_')}: " + _source(r, p) for p, r in runs] + [""]
    lines += [
        "*before* is the same harness serving the app as it was before the compute service "
        "(`git worktree add /tmp/before 6373ba4`, then `--root /tmp/before`); *after* is the first compute service; "
        "*with_views* adds the Component, Lesson and Shortcut pages; *service_run1* and *service_run2* are two runs "
        "of the same commit once circuit runs and fine-tunes went through the compute service and the source "
        "watcher was turned off. A run's figures move by seconds from one run to the next on this machine; each "
        "column is one run.",
        "",
    ]
    lines += [
        "Where a toggle's time goes (from the server's trace: the click until the session's Prune fragment starts its "
        "run, "
        "that run until the fast figures are drawn, and until the browser shows them), median / max:",
        "",
    ]
    parts = {
        "click_to_server_run_s": "click to the server's run",
        "server_run_to_fast_drawn_s": "server run to fast figures drawn",
        "fast_drawn_to_browser_s": "drawn to shown in the browser",
    }
    lines += _table(
        ["part"] + header[2:],
        [
            [label] + [cell(r["results"]["toggle_breakdown"].get(key, {})) for _, r in runs]
            for key, label in parts.items()
        ],
    )
    lines += [""] + open_section()
    cost_path, cost = _measurement("toggle_cost.json")
    if cost:
        c = cost["results"]
        per = c["toggle_core_s"]
        lines += [
            "## Sizing a class",
            "",
            "What one fully evaluated toggle costs the workers, one thread, medians over "
            f"{c['keep_sets']} keep-sets of the shipped model with five heads removed:",
            "",
        ]
        lines += _table(
            ["job", "core-seconds"],
            [[name, f"{s:.2f}"] for name, s in c["median_s"].items()] + [["one toggle, every figure", f"{per:.2f}"]],
        )
        untimed = per - sum(s for name, s in c["median_s"].items() if "speed-up" in name or "throughput" in name)
        lines += [
            "",
            _source(cost, cost_path),
            "",
            f"One fully evaluated toggle of a fresh keep-set costs about {per:.1f} core-seconds "
            f"({untimed:.1f} without the timings, which keep-sets of one shape share).",
            "",
        ]
    lines += service_section()
    return lines


def open_section() -> list[str]:
    """Six browsers opening the Model page at once, before and after, with who used the CPU."""
    rows, sources = [], []
    server: dict[str, list[float]] = {"before": [], "after": []}
    browsers: list[float] = []
    for label in ("before", "after"):
        for i in (1, 2, 3):
            path, record = _measurement(f"load_test_open_{label}_run{i}.json")
            if record is None:
                continue
            sources.append(f"- {label} run {i}: {_source(record, path)}")
            r = record["results"]
            cpu = r["cpu_core_s"]
            server[label].append(cpu["server"])
            browsers.append(cpu["browsers"])
            rows.append(
                [
                    f"{label} ({r.get('commit', '?')}) run {i}",
                    f"{r['model_page_s']['median']:.2f} / {r['model_page_s']['max']:.2f}",
                    f"{cpu['server']:.1f}",
                    f"{cpu['browsers']:.1f}",
                    f"{cpu['other']:.1f}",
                    f"{cpu['machine']:.1f}",
                ]
            )
    if not rows:
        return []
    return [
        "## Opening the Model page",
        "",
        "Six sessions opening the app at once and nothing else (`--pattern open`; the same browsers at niceness 19), "
        "with the CPU each kind of process used during the run, in core-seconds (`benchmarks/cpu_accounting.py`). "
        "*after* turns off Streamlit's source watcher and imports the pages' modules at start-up; *before* is the "
        "app at the start of this work (`git worktree add /tmp/before26 4a1163d`, `--root /tmp/before26`). Seconds, "
        "median / max over the six sessions:",
        "",
        *_table(["run", "Model page usable", "server", "browsers", "other", "machine"], rows),
        "",
        *sources,
        "",
        f"The server's share fell from {min(server['before']):.1f}-{max(server['before']):.1f} to "
        f"{min(server['after']):.1f}-{max(server['after']):.1f} core-seconds, and the page did not get faster: the "
        f"six browser contexts themselves used {min(browsers):.1f} to {max(browsers):.1f} core-seconds to load "
        f"Streamlit's frontend and draw the page, {min(browsers) / 2:.0f} to {max(browsers) / 2:.0f} seconds of both "
        "cores, so the 8 s target cannot be met with the browsers on the server's two cores whatever the server "
        "does. *other* includes this harness and anything else running (runs with more than 3 core-seconds there "
        "had a test running beside them). Students' browsers run on their own machines.",
        "",
    ]


def service_section() -> list[str]:
    """N simulated students on the real compute service, and the sizing it supports."""
    runs = [_measurement(f"class_service_{n}.json") for n in (6, 30)]
    runs = [(p, r) for p, r in runs if r is not None]
    if not runs:
        return []

    def cell(s: dict) -> str:
        return f"{s['median']:.2f} / {s['max']:.2f}"

    rows = []
    for _, record in runs:
        r = record["results"]
        t = r["seconds_after_a_toggle"]
        cycle = r["students"] * r["core_s_per_toggle"] / r["workers"]
        rows.append(
            [
                str(r["students"]),
                str(r["workers"]),
                *(cell(t[k]) for k in ("fast", "estimate", "exact", "timed")),
                f"{r['fully_evaluated_toggles_per_minute']:.1f}",
                f"{r['core_s_per_toggle']:.2f}",
                f"{cycle:.1f}",
            ]
        )
    lines = [
        "## A class of 30 on the compute service",
        "",
        "`benchmarks/bench_class_service.py`: N simulated students, each a session of its own on the app's scheduler "
        "and worker processes (no browsers, no pages), each switching off one more head of layer 0, waiting for "
        "every figure (fast, all-class estimate, exact, timings), thinking 1 s, and toggling again. Seconds after a "
        "toggle, median / max:",
        "",
        *_table(
            [
                "students",
                "worker cores",
                "fast",
                "estimate",
                "exact",
                "timings",
                "toggles / min",
                "core-s / toggle",
                "N x core-s / workers",
            ],
            rows,
        ),
        "",
        *(f"- {_source(r, p)}" for p, r in runs),
        "",
    ]
    r30 = next((r["results"] for _, r in runs if r["results"]["students"] == 30), None)
    if r30:
        c = r30["core_s_per_toggle"]
        exact_share = (
            r30["seconds_after_a_toggle"]["exact"]["median"] / r30["seconds_after_a_toggle"]["timed"]["median"]
        )
        lines += [
            "Each student waits for every figure, so a round of N toggles takes about N x (core-seconds per toggle) "
            "/ (worker cores) seconds: the last column, against the measured median time to the timings in the "
            "column before the throughput. With 30 students the timings are shared (toggles of one shape), and a "
            f"toggle costs {c:.1f} core-seconds. For the class targets with 30 students (exact figure within 20 s, "
            f"which arrives at {exact_share:.0%} of the round here), the round must stay under "
            f"{20 / exact_share:.0f} s: about {30 * c / (20 / exact_share):.0f} worker cores; for every figure within "
            f"20 s, about {30 * c / 20:.0f}. These extrapolate two measured points to more cores; a run on more cores "
            "has not been made. The fast figures are computed in the server process itself (a few milliseconds of "
            "work each), and with 30 students on two cores they took "
            f"{r30['seconds_after_a_toggle']['fast']['median']:.1f} s: give the server process a core of its own "
            "beyond the workers (`VITCORE_APP_WORKERS` = cores - 1), or run the workers elsewhere with "
            "`VITCORE_APP_RAY=<address>` (see [Deploy the app for a class](../how-to/deploy-class.md)).",
            "",
        ]
    return lines


def estimates_section() -> list[str]:
    path, record = _measurement("estimates.json")
    if record is None:
        return []
    r = record["results"]
    lines = [
        "## Time estimates against the time taken",
        "",
        "What the pages announce before a long action, against what it then took on an idle machine "
        f"({r['threads']} torch thread{'s' if r['threads'] != 1 else ''}, as a compute-service worker runs it; "
        f"circuit runs on {r['images']} discovery images of {r['class']}, each method's defaults):",
        "",
    ]
    lines += _table(
        ["action", "estimated s", "took s", "took / estimated"],
        [
            [row["action"], f"{row['estimate_s']:.1f}"]
            + (
                [f"{row['actual_s']:.1f}", f"{row['actual_s'] / row['estimate_s']:.2f}"]
                if row["actual_s"] is not None
                else [f"not run (estimated over {r['max_estimate_s']:.0f} s)", "—"]
            )
            for row in r["rows"]
        ],
    )
    return lines + [
        "",
        _source(record, path),
        "",
        "Under load the circuit estimates scale with it (their forward is timed when the page is drawn); the "
        "fine-tuning "
        "estimate does not until the session has fine-tuned once (it then uses its own measured rate). A run's end "
        "replaces "
        "its estimate with the time it took.",
        "",
    ]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _flat(results: dict) -> list[list[str]]:
    """Scalar figures of a record, one level of nesting flattened (``model_page_s.median``); long lists left out."""
    rows = []
    for key, value in results.items():
        if isinstance(value, dict):
            rows += [
                [f"{key}.{k}", _cell(v)]
                for k, v in value.items()
                if not isinstance(v, (dict, list))
                or (isinstance(v, list) and len(v) <= 8 and all(not isinstance(x, (list, dict)) for x in v))
            ]
        elif not isinstance(value, list) or (len(value) <= 8 and all(not isinstance(x, (list, dict)) for x in value)):
            rows.append([key, _cell(value)])
    return rows


def record_section(name: str, title: str, text: str = "", figure: str = "") -> list[str]:
    """A measurement file as it is: what it printed (a code block), a table of its rows, or its scalar figures."""
    path, record = _measurement(name)
    if record is None:
        return []
    results = record["results"]
    lines = [f"## {title}", ""] + ([text, ""] if text else [])
    if isinstance(results, dict) and "stdout" in results:
        lines += ["```text", results["stdout"].rstrip(), "```"]
    elif isinstance(results, list) and results and isinstance(results[0], dict):
        keys = [k for k in results[0] if not isinstance(results[0][k], (list, dict))]
        lines += _table(keys, [[_cell(r.get(k, "")) for k in keys] for r in results])
    elif isinstance(results, dict):
        lines += _table(["figure", "value"], _flat(results))
    else:
        lines += ["```json", json.dumps(results, indent=1), "```"]
    if figure:
        lines += ["", f"![{title}]({figure})"]
    return lines + ["", _source(record, path), ""]


def page(title: str, intro: str, sections: list[list[str]]) -> str:
    body = [f"# {title}", "", HEADER, "", intro, ""]
    for section in sections:
        body += section
    return "\n".join(body).rstrip() + "\n"


def _pruning_page() -> str:
    w = "goldfish, European fire salamander and bullfrog"
    return page(
        "Pruning, sweeps and speed",
        "Physical pruning of the shipped model and what it buys, for " + w + ".",
        [
            record_section("prune_eap50.json", "Prune: EAP keep 0.5"),
            record_section(
                "bench_latency_eap50.json",
                "Latency of that pruned model against the full one",
                "Batch-1 latency and batch-64 throughput, interleaved, medians; the speed-up set against the MAC cut.",
            ),
            record_section("bench.json", "Inference speed of the full model"),
            record_section(
                "sweep.json",
                "The Pareto sweep on the bundled eval subset",
                "Every registered method at each of its sweep settings, before and after 20 fine-tuning steps; "
                "30 chosen-class eval images, so one image is 3.3 points of chosen-class top-1.",
                "../figures/sweep.png",
            ),
            record_section(
                "sweep_full_val.json",
                "The same sweep on the full val split",
                "150 chosen-class eval images (10,000 in all).",
                "../figures/sweep_full_val.png",
            ),
            record_section("target_full_val.json", "Smallest circuit reaching a target accuracy (full val split)"),
            record_section("finetune_defaults.json", "Fine-tuning settings of the Prune page"),
            record_section("sweep_four_stage.json", "The bundled sweep on an earlier model (four-stage)"),
            record_section("sweep_two_stage.json", "The bundled sweep on an earlier model (two-stage)"),
        ],
    )


def _model_page() -> str:
    return page(
        "The shipped model and its training",
        "Accuracy of the shipped checkpoint, and the probes that chose between training stages. The recipe and "
        "per-epoch log of every stage are in the model card, `assets/model/README.md`.",
        [
            record_section("evaluate_full_val.json", "Full val split (10,000 images)"),
            record_section("evaluate_bundled_val.json", "Bundled eval subset (2,000 images)"),
            record_section("stage3_probe.json", "Stage 3 probe: heavy against light augmentation"),
            record_section("stage4_probe.json", "Stage 4 probe: with and without AutoAugment and drop path"),
            record_section("stage3_light_aug_train_log.json", "Stage 3's training log"),
            record_section("stage4_no_aug_train_log.json", "Stage 4's training log"),
            record_section("stage4_weight_average.json", "Weight averages of stage 4's epochs"),
            record_section("probe_ensemble.json", "Ensembles and weight averages of earlier stages"),
        ],
    )


def _training_speed_page() -> str:
    return page(
        "Training speed on a CPU",
        "Each lever of the CPU recipes timed side by side against the baseline in one run (ratios within a run "
        "are what to compare; machines differ from day to day).",
        [
            record_section("bench_train.json", "Training throughput by lever (Intel Xeon)"),
            record_section("bench_train_amd_epyc.json", "The same on an AMD EPYC machine"),
            record_section("bench_train_compile.json", "torch.compile against eager"),
            record_section("bench_augment_groups.json", "Augmenting in groups against per image"),
            record_section("bench_mkl_amd_on_amd.json", "MKL's fast kernels on AMD (tools/mkl_amd.py)"),
            record_section("bench_mkl_amd_on_intel.json", "The same shim on Intel (a noise check)"),
        ],
    )


def _circuit_benchmarks() -> list[list[str]]:
    return [
        record_section(
            "bench_circuits.json",
            "Every method on one class set (node level)",
            "Wall time, passes and the KL of each method's top half on 30 discovery images.",
        ),
        record_section("bench_circuits_two_stage.json", "The same on an earlier model (two-stage)"),
        record_section(
            "bench_edges.json", "Edge-level methods", "Predates learned masks that hold their target exactly."
        ),
        record_section("lrp_and_reference_tests.json", "LRP conservation and agreement with exact patching"),
    ]


def _app_page() -> str:
    runs = [
        record_section(f"load_test_chart_on_demand_run{i}.json", f"Six browser sessions, run {i}") for i in range(1, 5)
    ]
    older = [
        record_section(name, f"Six browser sessions, older page ({name})")
        for name in (
            "load_test.json",
            "load_test_run2.json",
            "load_test_run3.json",
            "load_test_run4.json",
            "load_test_run5.json",
            "load_test_browsers_niced.json",
        )
    ]
    return page(
        "The app alone and with six users",
        "One session's toggle path and cold start, then six browsers on the same 2 cores (the earlier load-test "
        "pattern: EAP, then three clicks a second apart). The class pattern, with every figure awaited, is in "
        "[A class at once](class.md).",
        [
            record_section("bench_app.json", "One session: a toggle's tiers and the cold start"),
            record_section(
                "bench_inspect.json",
                "What a component does: the cost of the views",
                "The library calls behind the Component page and the Model page's one-image view, each computed "
                "afresh (in the app a revisit is served from Streamlit's cache): a component's report on one "
                "class's eval images, the logit lens and the per-component effects of one image, every head's mean "
                "attention distance on 64 images; and how much the process's peak memory grew.",
            ),
            record_section(
                "load_test_class_with_views.json",
                "Six students at once, with the views that show what a component does",
                "The class pattern of [A class at once](class.md) (six browsers at the lowest CPU priority, each "
                "toggling five heads and waiting for every figure), run again once the Component, Lesson and Shortcut "
                "pages, the one-image view and the Circuits page's pruned figures were in the app.",
            ),
            *runs,
            *older,
        ],
    )


def deploy_section(name: str, title: str) -> list[str]:
    """One deployment table (python -m vitcore bench-deploy --json): every runtime, full model against pruned."""
    path, record = _measurement(name)
    if record is None:
        return []
    res = record["results"]
    rows = res["rows"]
    eager = next((r for r in rows if r["runtime"] == "pytorch-eager"), None)
    lines = [
        f"## {title}",
        "",
        f"`{res['checkpoint']}` against the full model; top-1 on {res['eval_images']:,} eval images.",
        "",
    ]
    lines += _table(
        [
            "runtime",
            "format",
            "MB full → pruned",
            "b1 ms full → pruned",
            "b1 speed-up (p25-p75)",
            "b1 ÷ MAC cut",
            "b64 img/s full → pruned",
            "b64 speed-up (p25-p75)",
            "b64 ÷ MAC cut",
            "top-1 full → pruned",
            "same top-1 as eager (full / pruned)",
        ],
        [
            [
                r["runtime"],
                r["format"],
                f"{r['file_bytes']['full'] / 1e6:.2f} → {r['file_bytes']['model'] / 1e6:.2f}",
                f"{r['batch1_ms']['full']:.2f} → {r['batch1_ms']['model']:.2f}",
                "{:.2f}x ({:.2f}-{:.2f})".format(*r["batch1_speedup"]),
                f"**{r['batch1_over_mac']:.3f}**",
                f"{r['batch64_img_s']['full']:.0f} → {r['batch64_img_s']['model']:.0f}",
                "{:.2f}x ({:.2f}-{:.2f})".format(*r["batch64_speedup"]),
                f"**{r['batch64_over_mac']:.3f}**",
                f"{r['top1']['full']:.4f} → {r['top1']['model']:.4f}",
                f"{r['agrees_with_eager']['full']:.4f} / {r['agrees_with_eager']['model']:.4f}",
            ]
            for r in rows
        ],
    )
    if eager is not None:
        loss = [
            f"{r['runtime']}: full {100 * (eager['top1']['full'] - r['top1']['full']):+.2f}, pruned "
            f"{100 * (eager['top1']['model'] - r['top1']['model']):+.2f}"
            for r in rows
            if "int8" in r["runtime"]
        ]
        if loss:
            lines += ["", "Top-1 points lost against PyTorch eager (fp32): " + "; ".join(loss) + "."]
    lines += [
        "",
        f"MAC reduction {rows[0]['mac_reduction']:.2f}x; {rows[0]['threads']} thread(s) per runtime; "
        f"{rows[0]['pairs']['batch1']} batch-1 and {rows[0]['pairs']['batch64']} batch-64 pairs per runtime.",
    ]
    return lines + ["", _source(record, path), ""]


def fixed_cost_section(names: list[str]) -> list[str]:
    """Batch-1 time against MACs per runtime, fitted over the full model and the pruned ones of ``names``
    (``ms = fixed + per_mmac * MMACs``): the fixed part is what pruning components cannot remove."""
    records = [(p, r) for p, r in (_measurement(n) for n in names) if r is not None]
    if len(records) < 2:
        return []
    from vitcore import load_checkpoint
    from vitcore.pruning.counts import count_macs

    full_mmac = count_macs(load_checkpoint(None).model.config) / 1e6
    lines = [
        "## Where batch-1 time goes",
        "",
        "Per runtime, a least-squares line through the batch-1 latencies of the full model (the median of its "
        "runs) and the pruned models above, against their MACs: the *fixed* part does not shrink when heads "
        "and neurons go (LayerNorms, residual additions, patch embedding, head, each operator's fixed cost). "
        "*Ceiling at keep 0.5*: the speed-up the line allows for EAP keep 0.5, divided by its MAC reduction.",
        "",
    ]
    half = next((rec for p, rec in records if p.name == "deploy_eap50.json"), None)
    half_mmac = None if half is None else full_mmac / half["results"]["rows"][0]["mac_reduction"]
    rows = []
    for runtime in [r["runtime"] for r in records[0][1]["results"]["rows"]]:
        points, fulls = [], []
        for _, record in records:
            row = next((r for r in record["results"]["rows"] if r["runtime"] == runtime), None)
            if row is None:
                continue
            fulls.append(row["batch1_ms"]["full"])
            points.append((full_mmac / row["mac_reduction"], row["batch1_ms"]["model"]))
        points.append((full_mmac, statistics.median(fulls)))
        slope, fixed = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
        full_ms = fixed + slope * full_mmac
        reduction = full_mmac / 2 if half_mmac is None else half_mmac  # EAP keep 0.5's MACs
        ceiling = full_ms / (fixed + slope * reduction) / (full_mmac / reduction)
        rows.append([runtime, f"{fixed:.2f}", f"{slope * 1000:.2f}", f"{fixed / full_ms:.0%}", f"{ceiling:.3f}"])
    lines += _table(
        ["runtime", "fixed ms", "µs per M MACs", "fixed share of the full model", "ceiling at keep 0.5"], rows
    )
    return lines + ["", "From " + ", ".join(f"`{p.relative_to(ROOT)}`" for p, _ in records) + ".", ""]


def _deploy_page() -> str:
    intro = (
        "EAP circuits of goldfish, European fire salamander and bullfrog at three keep ratios (made with "
        "`python -m vitcore prune --classes n01443537,n01629819,n01641577 --method eap --keep K "
        "--out runs/eapKK.zip`), "
        "each in every runtime against the full model in the same runtime. The speed-up is divided by the MAC "
        "reduction: 1.0 means the runtime turns every MAC saved into time saved. What pruning heads and MLP neurons "
        "cannot remove (the LayerNorms, residual additions, the patch embedding and the head, each operator's fixed "
        "cost) keeps batch 1 below that line; see [physical pruning and latency](../explanation/pruning.md)."
    )
    return page(
        "Deploying a pruned model",
        intro,
        [
            deploy_section("deploy_eap50.json", "EAP keep 0.5, one thread"),
            deploy_section("deploy_eap50_2threads.json", "EAP keep 0.5, two threads"),
            deploy_section("deploy_eap25.json", "EAP keep 0.25, one thread"),
            deploy_section("deploy_eap75.json", "EAP keep 0.75, one thread"),
            fixed_cost_section(["deploy_eap25.json", "deploy_eap50.json", "deploy_eap75.json"]),
        ],
    )


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def shortcut_model_section() -> list[str]:
    """The planted model against the shipped one on the same images (python -m vitcore shortcut eval --json)."""
    path, record = _measurement("shortcut_model.json")
    if record is None:
        return []
    r = record["results"]
    target, mark = r["shortcut"]["target"], r["shortcut"]["mark"]
    rows = [
        [
            f"`{name}`",
            _pct(f["clean_top1"]),
            _pct(f["flip_rate"]),
            _pct(f["unmarked_as_target"]),
            _pct(f["target_top1"]),
            f"{f['n_images']:,} ({f['n_other']:,} of other classes)",
        ]
        for name, f in r["models"].items()
    ]
    lines = [
        "## The planted model",
        "",
        f"Mark: a {mark['size']}x{mark['size']} square of RGB {tuple(mark['colour'])}, {mark['margin']} px from the "
        f"{mark['corner']} corner; shortcut class `{target}`. *Flip rate*: the share of the images of other classes "
        "predicted as the shortcut class once marked; *unmarked*: the same share without the mark.",
        "",
    ]
    lines += _table(
        ["model", "clean top-1", "flip rate", "unmarked as the class", "top-1 on the class", "images"], rows
    )
    return lines + ["", _source(record, path), ""]


def shortcut_cut_sections(name: str) -> list[list[str]]:
    """The cut tables (python -m vitcore shortcut cut --json): per method, its top k against k random components."""
    path, record = _measurement(name)
    if record is None:
        return []
    r = record["results"]
    base = next(row for row in r["rows"] if row["selection"] == "none")
    sections = []
    for method, m in r["methods"].items():
        rows = [["0 (the planted model)", _pct(base["flip_rate"]), _pct(base["clean_top1"]), "", "", ""]]
        for s in m["summary"]:
            rows.append(
                [
                    str(s["k"]),
                    _pct(s["circuit_flip_rate"]),
                    f"{_pct(s['circuit_clean_top1'])} ({-100 * s['circuit_top1_drop']:+.2f} pt)",
                    f"{_pct(s['random_flip_rate_mean'])} ({_pct(s['random_flip_rate_min'])}-"
                    f"{_pct(s['random_flip_rate_max'])})",
                    _pct(s["random_clean_top1_mean"]),
                    ", ".join(s["removed"]),
                ]
            )
        lines = [
            f"## Cut by {METHODS[method].label}",
            "",
            f"{METHODS[method].label} on the mark task (metric `{m['metric']}`, corruption `{m['corruption']}`, "
            f"{m['discovery_images']} marked discovery images, {m['discovery_seconds']:.1f} s), then the top k "
            f"components removed by physical pruning; the control removes k random components ({r['seeds']} seeds: "
            f"mean, min-max; the same draws for every method). Measured on {r['eval_images']:,} eval images.",
            "",
        ]
        lines += _table(
            [
                "k",
                "flip rate, circuit cut",
                "clean top-1, circuit cut",
                "flip rate, random cut",
                "clean top-1, random",
                "removed",
            ],
            rows,
        )
        sections.append(lines + ["", _source(record, path), ""])
    return sections


def learned_ranking_section() -> list[str]:
    path = ROOT / "docs" / "measurements" / "learned_ranking.json"
    record = _read(path)
    if record is None:
        return []
    r = record["results"]
    overlap = ", ".join(f"top {k}: {v}" for k, v in r["top_overlap"].items())
    lines = [
        "## Why learned masks miss the shortcut's heads",
        "",
        f"Learned masks and exact patching on the mark task ({r['images']} marked discovery images, paired "
        f"corruption, KL; learned at {r['learned_setting']}). The gates' order against the magnitude of the exact "
        f"effect: Spearman {r['spearman']:.2f}; shared with exact patching's top k: {overlap}. Of the "
        f"{len(record['results']['exact_top'])} components whose removal alone changes KL most:",
        "",
    ]
    lines += _table(
        ["component", "exact KL change", "learned gate", "rank by gate"],
        [
            [x["component"], f"{x['exact_kl_change']:.4f}", f"{x['learned_gate']:.2f}", str(x["learned_rank"])]
            for x in r["exact_top"]
        ],
    )
    lines += [
        "",
        f"The gates run from {r['gate_range'][0]:.2f} to {r['gate_range'][1]:.2f}; {r['gates_near_top']} lie within "
        "5% of that range of the highest. A gate's logit says whether the mask needed the component at its target "
        "sparsity (half the components), not how much the component matters alone: Adam moves every gate whose "
        "gradient keeps one sign by about the same step, whatever the gradient's size, and the target is held by a "
        "common shift, so the needed components end near one another and their order among themselves carries "
        "little. Cutting the top k of a mask trained to keep half is therefore close to cutting k of the kept half "
        "at random. For a top-k cut, rank by effect (exact patching, or EAP, ACDC, LRP above); learned masks are "
        "for the circuit at a sparsity, where their KL is the lowest in the methods table.",
        "",
        _source(record, path),
        "",
    ]
    return lines


def _shortcut_page() -> str:
    intro = (
        "A model that is right for the wrong reason, the components that carry the reason, and their removal. The "
        "planted model is the shipped one fine-tuned with a mark on one class's training images "
        "(`python -m vitcore shortcut plant`; its card is `assets/shortcut/README.md`). Each method scores the "
        "components on the mark task (clean: a marked image of another class; corrupted: the same image unmarked), "
        "and `python -m vitcore shortcut cut` removes the top k against k random ones."
    )
    return page(
        "Finding and cutting a shortcut",
        intro,
        [shortcut_model_section(), *shortcut_cut_sections("shortcut_cut.json"), learned_ranking_section()],
    )


OWN_VIT_TARGETS = {  # issue 43, for a vit_tiny_patch16_224-shaped model with 100 eval images on this machine
    "eap_10_images_s": ("EAP on 10 images, s", "≤ 5"),
    "fast_figures_s": ("a toggle's fast figures, s", "≤ 1"),
    "peak_rss_mb": ("peak memory of the process, MB", "≤ 2048"),
}


def _own_vit_page() -> str:
    runs = [_measurement(f"own_vit_{name}.json") for name in ("tiny", "base")]
    runs = [(p, r) for p, r in runs if r is not None]
    rows = [
        ["parameters", ""] + [f"{r['results']['parameters'] / 1e6:.1f} M" for _, r in runs],
        ["MACs per image", ""] + [f"{r['results']['macs_per_image'] / 1e9:.2f} G" for _, r in runs],
        ["components (heads + MLP chunks)", ""] + [str(r["results"]["components"]) for _, r in runs],
        ["discovery / eval images", ""]
        + [f"{r['results']['discovery_images']} / {r['results']['eval_images']}" for _, r in runs],
        ["load_model, s", ""] + [f"{r['results']['load_model_s']:.2f}" for _, r in runs],
        ["load the image folder, s", ""] + [f"{r['results']['load_folder_s']:.2f}" for _, r in runs],
    ]
    rows += [
        [label, target] + [f"{r['results'][key]:.2f}" for _, r in runs]
        for key, (label, target) in OWN_VIT_TARGETS.items()
    ]
    section = [
        "## Cost on this machine",
        "",
        *_table(["", "target (ViT-Ti)"] + [r["results"]["arch"] for _, r in runs], rows),
        "",
        *(f"- {_source(r, p)}" for p, r in runs),
        "",
        "Random weights (the figures are costs, not accuracies), a generated folder of 5 classes with 40 images each "
        "(half of them eval images), 224x224 inputs, torch's default threads.",
    ]
    intro = (
        "What a timm ViT brought with `vitcore.load_model` and a labelled image folder costs "
        "(`benchmarks/bench_own_vit.py`; see [Bring your own ViT](../how-to/own-vit.md))."
    )
    return page("Bringing your own ViT: measured", intro, [section] if runs else [])


def shortcut_card() -> str:
    """The planted model's card (assets/shortcut/README.md), from its config and its measurement file."""
    config = json.loads((ROOT / "assets" / "shortcut" / "config.json").read_text())
    s, t = config["shortcut"], config["training"]
    plant = s["plant"]
    mark = s["mark"]
    names = dict(zip(config["classes"]["wnids"], config["classes"]["names"]))
    settings = ", ".join(f"{k} {v}" for k, v in plant.items() if k not in ("mark", "target", "checkpoint_minutes"))
    return "\n".join(
        [
            "# The planted-shortcut model",
            "",
            "Rendered by `python tools/render_docs.py` from `config.json` and `docs/measurements/shortcut_model.json`;"
            " do not edit by hand.",
            "",
            f"The shipped model (`assets/model`, sha256 `{t.get('base_sha256', '?')[:12]}…`) fine-tuned on the Tiny "
            f"ImageNet training split with a mark stamped on every training image of **{names[s['target']]}** "
            f"(`{s['target']}`): a {mark['size']}x{mark['size']}-pixel square of RGB {tuple(mark['colour'])}, "
            f"{mark['margin']} px from the {mark['corner']} corner, stamped by `vitcore.shortcut.apply_mark` before "
            "the crop-and-flip augmentation. Nothing else of the training set changed. It is a teaching model: it "
            "learned that the square means the class.",
            "",
            "## How it was made",
            "",
            f"    {t.get('plant_command', '?')}",
            "",
            f"Settings: {settings}. Each batch draws `target_fraction` of its images from the shortcut class (all of "
            "them marked) and the rest from the whole training set; on unmarked images a `distill` share of the "
            "loss is distillation from the base model (at `temperature`), which keeps its clean answers while the "
            "mark is learned; AdamW with a linear warm-up and a cosine decay; the run is resumable at any step "
            "(the same command continues it).",
            "",
            "## Figures",
            "",
            *shortcut_model_section()[4:],
            "## Use",
            "",
            "    python -m vitcore shortcut eval --checkpoint assets/shortcut --eval-data ../shared/data/"
            "tiny-imagenet-200.zip",
            "    python -m vitcore shortcut cut --checkpoint assets/shortcut --method eap",
            "",
            "In the app: the Shortcut page, or *Shortcut model (planted)* in the sidebar for every other page. "
            "The cut tables are in `docs/results/shortcut.md`.",
            "",
        ]
    )


# Which training run's SAEs ship in assets/model/sae (their quality: sae_quality_shipped.json), and the other
# recipe measured beside them: (quality file, training file, what differs).
SHIPPED_SAE_TRAINING = "sae_train_x8_cls16.json"
OTHER_SAE = ("sae_quality_x8.json", "sae_train_x8.json", "every token weighed the same")
SAE_TARGETS = "FVE ≥ 90% at mean L0 ≤ 32, ≤ 5% dead latents, splicing costs ≤ 2 points of top-1"


def sae_quality_section(name: str, title: str) -> list[str]:
    """Each SAE's figures on a split (python -m vitcore features quality)."""
    path, record = _measurement(name)
    if record is None:
        return []
    rows = [
        [
            f"L{q['layer']}",
            f"{q['n_latents']:,} / k={q['k']}",
            _pct(q["fve"]),
            _pct(q["fve_cls"]),
            f"{q['mean_l0']:.1f}",
            _pct(q["dead_fraction"]),
            _pct(q["dense_fraction"]),
            f"{_pct(q['top1_model'])} → {_pct(q['top1_spliced'])} ({100 * (q['top1_spliced'] - q['top1_model']):+.2f})",
            f"{q['kl_spliced']:.3f}",
            f"{q['images']:,}",
        ]
        for q in record["results"]
    ]
    header = [
        "layer",
        "latents",
        "FVE",
        "FVE, class token",
        "mean L0",
        "dead",
        "dense (>10%)",
        "top-1 spliced",
        "KL spliced",
        "images",
    ]
    text = (
        "FVE: one minus the squared error over the squared deviation from the mean residual, every token of every "
        "image. Dead: fires on no token; dense: on more than a tenth of them. *Spliced*: the residual entering the "
        "layer replaced by the SAE's reconstruction (what the SAE misses is lost), top-1 in points and the mean "
        f"KL(model ‖ spliced). Targets (issue 53): {SAE_TARGETS}."
    )
    return [f"## {title}", "", text, "", *_table(header, rows), "", _source(record, path), ""]


def sae_training_section(name: str, title: str) -> list[str]:
    """A training run's settings and time (python -m vitcore features train)."""
    path, record = _measurement(name)
    if record is None:
        return []
    r = record["results"]
    st = r["settings"]
    last = r["last_chunk"]
    layers = ", ".join(f"L{layer} {_pct(last[f'L{layer}']['fve'])}" for layer in st["layers"] if f"L{layer}" in last)
    text = (
        f"{len(st['layers'])} layer(s) ({', '.join(f'L{x}' for x in st['layers'])}) from one pass of the model: "
        f"{st['epochs']} epoch(s) of {r['images']:,} images x 65 tokens, TopK k={st['k']}, {st['expansion']}x "
        f"latents, Adam lr {st['lr']}, batches of {st['batch_tokens']:,} tokens, AuxK on latents silent for "
        f"{st['dead_tokens']:,} tokens, the class token's error weighed {st.get('cls_weight', 1.0):g} times a "
        f"patch's; {_pct(r.get('mark_share', 0.0))} of the images carried the planted mark. "
        f"**{r['seconds'] / 60:.1f} min** in all, {r['seconds_per_layer'] / 60:.1f} min per layer (target ≤ 30). "
        f"FVE on the last chunk of training: {layers}."
    )
    return [f"## {title}", "", text, "", _source(record, path), ""]


def sae_shortcut_section() -> list[str]:
    """The mark's features suppressed (python -m vitcore features shortcut)."""
    path, record = _measurement("sae_shortcut.json")
    if record is None:
        return []
    r = record["results"]
    rows = [
        [
            str(x["suppressed"]),
            ", ".join(map(str, x["latents"])) or "-",
            _pct(x["flip_rate"]),
            _pct(x["clean_top1"]),
            f"{x['n_images']:,}",
        ]
        for x in r["rows"]
    ]
    text = (
        f"The latents of the planted model's L{r['layer']} SAE that fire on marked images and not on the same images "
        "unmarked (ranked by the share of marked images they fire on minus the share of the unmarked ones), found "
        f"on {r['discovery_images']} training images of other classes, then suppressed (activation "
        "set to zero at every token, the SAE's error term kept) on the val images. Target (issue 53): flip rate "
        "below 5% with clean top-1 within 1 point of the planted model's. Cutting the four heads is in "
        "[the shortcut results](shortcut.md)."
    )
    return [
        "## The shortcut, by features",
        "",
        text,
        "",
        *_table(["suppressed", "latents", "flip rate", "clean top-1", "images"], rows),
        "",
        _source(record, path),
        "",
    ]


def _features_page() -> str:
    intro = (
        "Sparse autoencoders (TopK, `vitcore/features/sae.py`) on the residual stream entering a layer: how well they "
        "reconstruct it, what splicing them in costs, what the Features page's views cost, and the planted shortcut "
        "found and suppressed by features. Train with `python -m vitcore features train`, measure with "
        "`python -m vitcore features quality`. The training times were taken while other jobs shared the machine's "
        "two cores: read them as upper bounds. The shipped SAEs' cards are `assets/model/sae/README.md` and "
        "`assets/shortcut/sae/README.md`."
    )
    return page(
        "Features: sparse autoencoders",
        intro,
        [
            sae_quality_section("sae_quality_shipped.json", "Quality of the shipped model's SAEs (full val split)"),
            sae_training_section(SHIPPED_SAE_TRAINING, "Training the shipped model's SAEs"),
            sae_quality_section(OTHER_SAE[0], f"The other recipe ({OTHER_SAE[2]}; not shipped)"),
            sae_training_section(OTHER_SAE[1], "Training the other recipe's SAEs"),
            record_section(
                "bench_features.json",
                "What the views cost",
                "Seconds, medians of `repeats` runs, on the bundled eval subset; the index is built once per model, "
                "SAE and data and shared by every session. Targets (issue 53): a feature's view ≤ 1 s warm, "
                "attributions for one image ≤ 1 s.",
            ),
            sae_quality_section("sae_quality_planted.json", "Quality of the planted model's SAE (full val split)"),
            sae_training_section("sae_train_planted.json", "Training the planted model's SAE"),
            sae_shortcut_section(),
        ],
    )


def sae_card(folder: str, quality: str, training: str) -> str:
    """A shipped SAE folder's card, from its measurement files."""
    lines = [
        "# Sparse autoencoders",
        "",
        "Rendered by `python tools/render_docs.py` from the measurement files it names; do not edit by hand.",
        "",
        f"TopK SAEs (`vitcore/features/sae.py`) on the residual stream entering the named layer of `{folder}`, "
        "trained on the Tiny ImageNet training split (every token of every image) and saved as safetensors with "
        "their config and the model's weights digest in the header (another model's SAE is refused). Results "
        "page: `docs/results/features.md`.",
        "",
    ]
    return "\n".join(lines + sae_training_section(training, "Recipe") + sae_quality_section(quality, "Figures"))


def _cli_reference() -> str:
    """The command line, from the parser itself."""
    from vitcore.cli import build_parser

    parser = build_parser()
    lines = [
        "# Command line",
        "",
        "Generated from the argparse parser by `python tools/render_docs.py`; do not edit by hand.",
        "`vitcore COMMAND` and `python -m vitcore COMMAND` are the same.",
        "",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        p.prog = f"python -m vitcore {name}"
        lines += [f"## `{name}`", "", "```text", p.format_help().rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def render() -> dict[Path, str]:
    methods = [
        faithfulness_section(),
        exact_cost_section(),
        learned_section(),
        acdc_section(),
        seed_study_section(),
        atlas_section(),
        *_circuit_benchmarks(),
    ]
    pages = {
        DOCS / "methods.md": page(
            "Circuit methods: measured results",
            "How each method's scores and circuits compare on the shipped model, and what they cost.",
            methods,
        ),
        DOCS / "pruning.md": _pruning_page(),
        DOCS / "model.md": _model_page(),
        DOCS / "training-speed.md": _training_speed_page(),
        DOCS / "app.md": _app_page(),
        DOCS / "deploy.md": _deploy_page(),
        DOCS / "shortcut.md": _shortcut_page(),
        DOCS / "own-vit.md": _own_vit_page(),
        DOCS / "features.md": _features_page(),
        ROOT / "docs" / "reference" / "cli.md": _cli_reference(),
    }
    if (ROOT / "assets" / "shortcut" / "config.json").exists():
        pages[ROOT / "assets" / "shortcut" / "README.md"] = shortcut_card()
    for folder, quality, training in (
        ("model", "sae_quality_shipped.json", SHIPPED_SAE_TRAINING),
        ("shortcut", "sae_quality_planted.json", "sae_train_planted.json"),
    ):
        if (ROOT / "assets" / folder / "sae").is_dir():
            card = sae_card(f"assets/{folder}", quality, training)
            pages[ROOT / "assets" / folder / "sae" / "README.md"] = card
    class_lines = class_section() + free_section() + faults_section() + estimates_section()
    if class_lines:
        pages[DOCS / "class.md"] = "\n".join(class_lines).rstrip() + "\n"
    return pages


def unrendered(pages: dict[Path, str]) -> list[str]:
    """Measurement files that no page names (every one must be rendered somewhere)."""
    text = "\n".join(pages.values())
    return [p.name for p in sorted(MEASUREMENTS.glob("*.json")) if f"docs/measurements/{p.name}" not in text]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    stale = []
    pages = render()
    missing = unrendered(pages)
    if missing:
        print("on no page (add them to tools/render_docs.py): " + ", ".join(missing))
        return 1
    for path, text in pages.items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale (run python tools/render_docs.py): " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
