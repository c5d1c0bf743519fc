"""The method registry's contract: every registered method runs through discover, the CLI, the sweep, the atlas
and its app page, reading only what the registry declares; no caller names a method."""

import ast
import re
from pathlib import Path

import pytest
import torch
from conftest import ROOT, tiny_imageset, tiny_model

from vitcore.circuits import METHODS, TaskError, discover
from vitcore.circuits.patching import GRANULARITIES

SMALL_OPTIONS = {"n_steps": 2, "steps": 20}  # the cheapest value of each run option, for speed


def small(entry) -> dict[str, int]:
    return {o.field: max(o.low, SMALL_OPTIONS[o.field]) for o in entry.options}


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(), tiny_imageset()


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_through_discover_at_each_granularity_it_declares(tiny, name):
    model, data = tiny
    entry = METHODS[name]
    for granularity in GRANULARITIES:
        space = model.edges if granularity == "edge" else model.components
        if granularity not in entry.granularities:
            with pytest.raises(TaskError, match="only"):
                discover(model, data, data.wnids[:2], name, granularity=granularity)
            continue
        result = discover(model, data, data.wnids[:2], name, granularity=granularity, **small(entry))
        assert len(result.scores) == len(space) and torch.isfinite(result.score_tensor()).all()
        value = entry.default(granularity)
        if entry.ranks:
            assert len(result.kept) == round(value * len(space))
        elif entry.setting_for_keep:  # a sparsity: the kept set has exactly the asked size
            assert len(result.kept) == round((1 - value) * len(space))
        assert set(result.kept) <= set(space.names)
        assert result.faithfulness["kl"] >= 0


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_declares_a_usable_record(name):
    entry = METHODS[name]
    assert entry.granularities and set(entry.granularities) <= set(GRANULARITIES)
    for granularity in entry.granularities:
        entry.param.check(entry.default(granularity))
    assert all(entry.param.check(v) == v for v in entry.sweep)
    assert all(entry.param.check(v) == v for v in entry.param.choices)
    assert entry.default() in entry.param.choices  # the app's slider can show the default
    for o in entry.options:
        assert o.low <= o.default <= o.high
        with pytest.raises(TaskError, match=o.flag[2:]):
            o.check(o.high + 1)
    if entry.param.search is not None:
        lo, hi = entry.param.search
        entry.param.check(lo), entry.param.check(hi)
    assert entry.estimate_seconds(0.01, entry.run_options(), 100) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_through_the_cli(name, tmp_path, capsys):
    from vitcore.circuits.result import CircuitResult
    from vitcore.cli import main

    entry = METHODS[name]
    args = ["circuits", "--method", name, "--classes", "n01443537", "--images", "3", "--out", str(tmp_path / "r.json")]
    for field, value in small(entry).items():
        args += [f"--{field.replace('_', '-')}", str(value)]
    assert main(args) == 0, capsys.readouterr().err
    result = CircuitResult.load(tmp_path / "r.json")
    assert result.method == name and result.n_images == 3


def test_every_method_through_the_sweep_and_the_atlas(tiny, tmp_path):
    from vitcore.atlas.run import AtlasSettings, run_atlas
    from vitcore.pruning.sweep import run_sweep

    model, data = tiny
    settings = {name: [entry.sweep[0]] for name, entry in METHODS.items()}
    rows = run_sweep(model, data, data, data.wnids[:2], settings, latency_repeats=2, options=SMALL_OPTIONS)
    assert {r["method"] for r in rows} == {"baseline", *METHODS}
    atlas = AtlasSettings(options=tuple(SMALL_OPTIONS.items()))
    run = run_atlas(
        model, data, data.wnids[:1], list(METHODS), tmp_path / "atlas", atlas, backend="local", progress=False
    )
    assert run.ran == len(METHODS)
    assert {p.parent.name for p in (tmp_path / "atlas" / "results").glob("*/*.json")} == set(METHODS)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_on_its_app_page(name):
    from test_app import GOLDFISH, goto, new_app

    at = goto(new_app(), "circuits")
    assert METHODS[name].label in at.selectbox(key="method").options
    at.multiselect(key="class_pick").select(GOLDFISH).run()
    at.selectbox(key="method").set_value(name).run()
    at.slider(key="n_images").set_value(3).run()
    for field, value in small(METHODS[name]).items():
        at.slider(key=field).set_value(value).run()
    at.button(key="run_circuit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["app"].results[-1].method == name
    goto(at, "prune")  # the Prune page drives its slider from the result, whatever the method


def _names_used(path: Path) -> set[str]:
    """Every registered method name written in a file: in a string or as an identifier."""
    words = {m.replace("-", "_") for m in METHODS} | set(METHODS)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= set(re.findall(r"[a-z][a-z_-]*", node.value)) & set(METHODS)
        elif isinstance(node, ast.Name) and node.id in words:
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in words:
            found.add(node.attr)
        elif isinstance(node, ast.alias) and node.name.split(".")[-1] in words:
            found.add(node.name)
    return found


def test_no_method_is_named_outside_its_module_and_the_registry():
    files = (
        sorted((ROOT / "pages").glob("*.py"))
        + sorted((ROOT / "ui").glob("*.py"))
        + sorted((ROOT / "vitcore" / "cli").glob("*.py"))
    )
    offenders = {str(p.relative_to(ROOT)): sorted(found) for p in files if (found := _names_used(p))}
    assert not offenders, offenders


def test_the_documented_threshold_method_holds(tiny, monkeypatch):
    """The threshold example of docs/how-to/add-method.md, registered for this test: discover, the sweep and the
    target search take it.
    """
    from vitcore.circuits.exact import exact_effects
    from vitcore.circuits.method import Method, MethodOutput, Option, Param
    from vitcore.pruning.search import bisect_setting
    from vitcore.pruning.sweep import run_sweep

    seen = []

    def run_my_threshold(model, task, cf, metric, tau, options):
        seen.append(options.rounds)
        scores = exact_effects(model, task, cf, metric)
        kept = (scores >= tau).float()
        return MethodOutput(
            scores, kept, forward_passes=len(scores), backward_passes=0.0, params={"tau": tau, "rounds": options.rounds}
        )

    entry = Method(
        "my-threshold",
        "My threshold",
        run_my_threshold,
        "kl",
        Param("tau", "tau", 0.01, 0.0, float("inf"), choices=(0.0, 0.005, 0.01, 0.05, 0.1), search=(1e-4, 0.5)),
        (0.01, 0.05, 0.1),
        "one forward per component",
        "One sentence for the app.",
        options=(Option("rounds", "Rounds", 3, 1, 10),),
        threshold_scores=True,
    )
    monkeypatch.setitem(METHODS, entry.name, entry)
    model, data = tiny
    classes = data.wnids[:2]
    result = discover(model, data, classes, "my-threshold", tau=0.05, rounds=7)
    assert seen[-1] == 7 and set(result.kept) == {n for n, s in zip(result.component_names, result.scores) if s >= 0.05}
    with pytest.raises(TaskError, match="rounds"):
        discover(model, data, classes, "my-threshold", rounds=11)
    # its new option is a command-line flag with nothing else changed
    import argparse

    from vitcore.cli.common import add_option_flags, own_options

    parser = argparse.ArgumentParser()
    add_option_flags(parser)
    assert own_options(parser.parse_args(["--rounds", "4", "--n-steps", "3"]), "my-threshold") == {"rounds": 4}
    rows = run_sweep(
        model, data, data, classes, {"my-threshold": [0.01, 0.1]}, latency_repeats=2, options={"rounds": 2}
    )
    assert [r["setting"] for r in rows if r["method"] == "my-threshold"] == [0.01, 0.1] and seen[-1] == 2
    value, ev, kept = bisect_setting(
        model, data, data, classes, data.chosen(classes), 0.0, "my-threshold", iterations=2
    )
    assert value == 0.5  # any circuit reaches top-1 0: the search returns the top of the declared range
