"""The Streamlit app through streamlit.testing.v1.AppTest: every page, bad input, two sessions."""

import base64
import gc
import io
import json
import re
import warnings
import zipfile

import numpy as np
import pytest
import torch
from conftest import ROOT
from hook_reference import patched_logits, record
from PIL import Image
from streamlit.testing.v1 import AppTest

from vitcore import load_checkpoint
from vitcore.data import normalize

pytestmark = pytest.mark.slow

APP = str(ROOT / "app.py")
GOLDFISH = "goldfish (n01443537)"


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def media_bytes(url: str) -> bytes:
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    file_id = url.rsplit("/", 1)[-1].split(".")[0]
    with warnings.catch_warnings():  # isinstance on every live object touches torch.distributed.reduce_op, which warns
        warnings.simplefilter("ignore", FutureWarning)
        storages = [o for o in gc.get_objects() if isinstance(o, MemoryMediaFileStorage)]
    for storage in storages:
        if file_id in storage._files_by_id:
            return storage._files_by_id[file_id].content
    raise KeyError(url)


def image_bytes(mode: str, fmt: str = "PNG", size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt)
    return buf.getvalue()


def run_eap(at: AppTest, classes=(GOLDFISH,)) -> AppTest:
    goto(at, "circuits")
    for c in classes:
        at.multiselect(key="class_pick").select(c)
    at.selectbox(key="method").set_value("eap")
    at.run()
    at.button(key="run_circuit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture
def app():
    """A fresh session per test, so that no test depends on another's clicks."""
    return new_app()


def test_model_page_widgets_and_uploads(app):
    at = app
    labels = [m.label for m in at.metric]
    assert {"Parameters", "MACs / image", "Top-1 (card)"} <= set(labels)
    assert at.multiselect(key="gallery_classes") and at.selectbox(key="gallery_filter")
    gallery = next(m.value for m in at.markdown if 'class="gallery"' in m.value)
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', gallery)
    assert len(uris) == 32
    # right/wrong marks that need no emoji font: no character from the emoji blocks or the old check marks
    assert not re.search("[\u2705\u274c\U0001f300-\U0001faff]", gallery)
    assert gallery.count('title="right"') + gallery.count('title="wrong"') == 32
    from vitcore.data import load_split

    first = Image.open(io.BytesIO(base64.b64decode(uris[0])))  # the first eval image, pixel for pixel
    val = load_split(None, "val")
    assert torch.equal(torch.from_numpy(np.array(first)).permute(2, 0, 1), val.images[0])
    model = load_checkpoint().model
    with torch.no_grad():  # per-class accuracy by hand, from a plain forward of the shipped model
        pred = model(normalize(val.images, model.config)).argmax(1)
    accs = [float((pred[val.labels == c] == c).float().mean()) for c in range(len(val.wnids))]
    line = next(m.value for m in at.markdown if m.value.startswith("**Best:**"))
    assert any(
        line.startswith(f"**Best:** {val.names[c]} {max(accs):.0%}") for c in range(len(accs)) if accs[c] == max(accs)
    ), line
    assert any(
        f"**Worst:** {val.names[c]} {min(accs):.0%}" in line for c in range(len(accs)) if accs[c] == min(accs)
    ), line
    # a chosen class gets its own row: its top-1 with n and a 95% Wilson interval (scipy's, not the app's formula)
    from scipy.stats import binomtest

    at.session_state["app"].classes = ["n01443537"]
    at.run()
    goldfish = val.class_index("n01443537")
    n = int((val.labels == goldfish).sum())
    ci = binomtest(round(accs[goldfish] * n), n).proportion_ci(method="wilson")
    row = next(d.value for d in at.dataframe if "chosen class" in d.value.columns).iloc[0]
    assert row["chosen class"] == val.names[goldfish]
    assert row["top-1 (n, 95% Wilson interval)"] == f"{accs[goldfish]:.1%} (n={n}, 95% CI {ci.low:.1%}–{ci.high:.1%})"
    charts = len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart"))
    at.toggle(key="per_class_chart").set_value(True).run()
    assert (
        len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart")) == charts + 1
    )  # the 200-class chart, on demand
    uploader = at.get("file_uploader")
    assert uploader
    good = [
        image_bytes("RGB"),
        image_bytes("RGBA"),
        image_bytes("CMYK", "JPEG"),
        image_bytes("I;16"),
        image_bytes("L", "JPEG"),
    ]
    for data in good:
        at.file_uploader(key="try_image").clear().upload("img.png", data).run()
        assert not at.error, [e.value for e in at.error]
        assert len(at.dataframe) >= 2  # top-5 of full and pruned model
    jpeg = image_bytes("RGB", "JPEG", (64, 64))
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, "PNG")
    for data, message in (
        (b"%PDF-1.4 not an image", "not an image"),
        (jpeg[:150], "truncated"),
        (bomb.getvalue(), "bomb"),
    ):
        at.file_uploader(key="try_image").clear().upload("x.bin", data).run()
        assert any(message in e.value for e in at.error), [e.value for e in at.error]
        assert not at.exception and "Parameters" in [m.label for m in at.metric]  # the page keeps working
    # the image shown is the one chosen last, whether uploaded or picked
    pick = next(o for o in at.selectbox(key="try_example").options if o.startswith("gallery 1:"))
    at.selectbox(key="try_example").set_value(pick).run()
    assert shown_image(at) == pick and not at.error
    at.file_uploader(key="try_image").clear().upload("mine.png", image_bytes("RGB")).run()
    assert shown_image(at) == "mine.png"


def shown_image(at: AppTest) -> str:
    """The name of the image the Model page shows as the model sees it."""
    captions = [caption for element in at.get("image") for caption in element.captions]
    return next(c for c in captions if "as the model sees it" in c).split(", as the model sees it")[0]


def test_circuits_eap_produces_scores_and_downloads(app):
    at = run_eap(app)
    result = at.session_state["app"].results[-1]
    assert result.method == "eap" and len(result.scores) == 216 and any(s != 0 for s in result.scores)
    assert metric(at, "Kept") == "108/216"
    assert len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart")) >= 2
    data = media_bytes(at.download_button(key="dl_json").proto.url)
    assert json.loads(data)["schema"] == "vitcore.circuit-result"


def test_circuits_attribution_compares_full_and_pruned_model():
    at = run_eap(new_app())  # EAP's keep-set becomes the session's pruned model
    assert 0 < int(at.session_state["app"].keep.sum()) < 216
    at.number_input(key="attr_steps").set_value(8)
    at.button(key="attr_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    pick, maps, lrp_maps = at.session_state["app"].attribution
    assert set(lrp_maps) == set(maps) and not torch.allclose(lrp_maps["full model"].pixels, maps["full model"].pixels)
    assert set(maps) == {"full model", "current pruned model"}
    assert not torch.allclose(maps["full model"].pixels, maps["current pruned model"].pixels)
    assert sum("completeness gap" in c.value for c in at.caption) == 2
    assert sum("LRP (AttnLRP)" in c.value for c in at.caption) == 2


def test_empty_class_choice_gives_message():
    at = goto(new_app(), "circuits")
    at.button(key="run_circuit").click().run()
    assert any("at least one class" in e.value for e in at.error)
    assert not at.exception


def test_prune_toggle_changes_keep_set_and_metrics(app):
    at = goto(app, "prune")
    before_keep = at.session_state["app"].keep.clone()
    before_macs = metric(at, "MACs / image")
    group = at.button_group(key="heads_0")
    if "H0" in group.value:
        group.unselect("H0").run()
    else:
        group.select("H0").run()
    assert not at.exception
    after_keep = at.session_state["app"].keep
    assert int((before_keep != after_keep).sum()) == 1
    assert metric(at, "MACs / image") != before_macs
    # pruning everything: a clear message, and the page keeps working
    for layer in range(9):
        at.multiselect(key="row_pick").select(layer)
    at.run()
    at.button(key="rows_off").click().run()
    assert any("switched off" in e.value for e in at.error) and not at.exception
    at.button(key="all_on").click().run()
    assert metric(at, "Top-1, chosen classes") and not at.error


def test_a_figure_job_that_stops_its_worker_on_every_try_is_one_line_and_the_page_goes_on(app, monkeypatch):
    from vitcore.compute.workers import WorkerDied, stopped_message
    from vitcore.playground import Playground

    at = goto(app, "prune")

    def stops_its_worker(*args, **kwargs):  # what the pool raises once a job's retry died too
        raise WorkerDied(stopped_message("sample", 3, "no answer"))

    with monkeypatch.context() as patched:
        patched.setattr(Playground, "estimate", stops_its_worker)
        at.button_group(key="heads_1").unselect("H3").run()
        assert not at.exception, [e.value for e in at.exception]
        assert [e.value for e in at.error] == [stopped_message("sample", 3, "no answer")]
        assert metric(at, "Top-1, chosen classes")  # the fast figures above it stay
    at.button_group(key="heads_1").select("H3").run()  # the next toggle gets every figure again
    assert not at.exception and not at.error
    assert metric(at, "Top-1, all eval classes")


def reopened(token: str | None) -> AppTest:
    """The app opened afresh (a reload, or a restarted server) with ``?session=token``."""
    at = AppTest.from_file(APP, default_timeout=300)
    if token is not None:
        at.query_params["session"] = token
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_reload_with_the_sessions_link_brings_its_work_back(app):
    at = goto(run_eap(app), "prune")
    group = at.button_group(key="heads_2")
    (group.unselect("H4") if "H4" in group.value else group.select("H4")).run()
    at.run()  # routed by folder (AppTest), a page saves what the last run left when it starts
    state, token = at.session_state["app"], at.query_params["session"]
    assert len(token) == 22 and state.results
    back = reopened(token).session_state["app"]
    assert back.classes == state.classes == ["n01443537"]
    assert torch.equal(back.keep, state.keep)
    assert [r.scores for r in back.results] == [r.scores for r in state.results]
    assert back.token == token
    # a malformed or unknown token: one line, a fresh session, nothing of anyone's work
    for bad, why in ((token[:-1] + "!", "malformed"), ("A" * 22, "unknown")):
        fresh = reopened(bad)
        assert [e.value for e in fresh.error] == [e.value for e in fresh.error if why in e.value] != []
        assert fresh.session_state["app"].results == [] and fresh.session_state["app"].classes == []
        assert fresh.query_params["session"] not in (bad, token)


def test_a_damaged_session_database_is_one_line_and_the_app_runs(tmp_path, monkeypatch):
    from ui.persist import session_store

    damaged = tmp_path / "sessions.sqlite"
    damaged.write_bytes(b"\x00garbage" * 500)
    monkeypatch.setenv("VITCORE_SESSION_DB", str(damaged))
    session_store.clear()
    try:
        at = reopened(None)
        assert [e.value for e in at.error] == [
            f"This session's work is not kept across reloads: {damaged}: cannot keep sessions' work there "
            "(file is not a database)."
        ]
        assert "session" not in at.query_params and at.session_state["app"].token == ""
        goto(at, "prune")
        assert metric(at, "Top-1, chosen classes") and not at.error
    finally:
        session_store.clear()


def test_finetune_and_export_download_loads(app, tmp_path):
    at = goto(app, "prune")
    at.multiselect(key="row_pick").set_value([8]).run()
    at.button(key="rows_off").click().run()
    at.number_input(key="ft_steps").set_value(5).run()
    assert any("5 fine-tuning steps: about" in c.value for c in at.caption)  # estimated from the measured throughputs
    at.button(key="ft_run").click().run()
    assert any("→" in s.value for s in list(at.success) + list(at.warning)), [e.value for e in at.error]
    assert at.get("arrow_line_chart") or at.get("vega_lite_chart") or at.get("arrow_vega_lite_chart")  # the loss curve
    pg = at.session_state["app"].playground
    tuned = at.session_state["app"].fine_tune.models["fine-tuned"]
    at.radio(key="ft_use").set_value("before fine-tuning").run()  # the pre-fine-tune model stays selectable
    assert pg.model_for(at.session_state["app"].keep) is at.session_state["app"].fine_tune.models["before fine-tuning"]
    at.radio(key="ft_use").set_value("fine-tuned").run()
    assert pg.model_for(at.session_state["app"].keep) is tuned
    assert at.session_state["app"].ft_seconds_per_step > 0  # the next estimate uses this machine's measured rate
    at.session_state["app"].running.add("finetune")  # as left behind by a fine-tuning run that Stop interrupted
    at.run()
    assert any("fine-tuning was stopped before it finished" in i.value for i in at.info) and not at.exception
    # reopened with its link: the keep-set and the fine-tune's settings come back (its weights are not kept)
    back = goto(reopened(at.query_params["session"]), "prune")
    assert torch.equal(back.session_state["app"].keep, at.session_state["app"].keep)
    assert any("fine-tuned before this session was reopened (5 steps, distilled" in i.value for i in back.info)
    assert back.number_input(key="ft_steps").value == 5
    goto(at, "export")
    data = media_bytes(at.download_button(key="dl_zip").proto.url)
    (tmp_path / "m.zip").write_bytes(data)
    ckpt = load_checkpoint(tmp_path / "m.zip")
    assert ckpt.model.config.heads[8] == 0 and ckpt.model.config.mlp_widths[8] == 0
    assert ckpt.info["provenance"]["finetuned"] is True
    assert len(ckpt.info["provenance"]["kept_components"]) == 216 - 24
    assert ckpt.info["provenance"]["setting"]["edited_on_prune_page"] is True  # made by hand, not by a method's setting
    from vitcore.data import load_split
    from vitcore.evaluate import evaluate

    own = evaluate(ckpt.model, load_split(None, "val"))["top1"]  # the exported model's card carries its own accuracy
    assert (
        ckpt.info["metrics"]["val_top1"] == pytest.approx(own, abs=1e-6)
        and ckpt.info["metrics"]["eval_set"] == "bundled"
    )


def sidebar_app(**state) -> AppTest:
    # AppTest (1.67) drops sidebar widgets from its tree on reruns when st.navigation is used, so
    # sidebar choices are preset before the first run; the app reports problems in the main area.
    # The browser test drives the real sidebar upload.
    at = AppTest.from_file(APP, default_timeout=300)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    return at


def test_server_paths_are_closed_by_default(tmp_path):
    at = sidebar_app(
        model_source="Path on this machine", model_path=str(tmp_path / "x"), data_path=str(tmp_path / "missing")
    )
    assert not at.exception and not at.error  # the preset path options are ignored: not offered at all
    assert at.session_state["model_source"] == "Shipped model" and at.session_state["app"].data_key == "bundled"


def test_bad_checkpoints_and_data_keep_the_app_working(tmp_path, monkeypatch):
    monkeypatch.setenv("VITCORE_ALLOW_SERVER_PATHS", "1")
    with zipfile.ZipFile(tmp_path / "pickle.zip", "w") as z:
        z.writestr("model.safetensors", b"\x80\x04pickle")
        z.writestr(
            "config.json",
            json.dumps({"model": {"dim": 192, "heads": [12] * 9, "mlp_widths": [384] * 9, "num_classes": 200}}),
        )
    shipped = ROOT / "assets" / "model"
    with zipfile.ZipFile(tmp_path / "wrong.zip", "w") as z:
        z.writestr("model.safetensors", (shipped / "model.safetensors").read_bytes())
        cfg = json.loads((shipped / "config.json").read_text())
        cfg["model"]["heads"] = [6] * 9
        z.writestr("config.json", json.dumps(cfg))
    for name, message in (("pickle.zip", "not a valid safetensors"), ("wrong.zip", "shape mismatch")):
        at = sidebar_app(model_source="Path on this machine", model_path=str(tmp_path / name))
        assert any(message in e.value for e in at.error), [e.value for e in at.error]
        assert not at.exception and "Parameters" in [m.label for m in at.metric]
    at = sidebar_app(data_path=str(tmp_path / "missing"))
    assert any("Could not use that data" in e.value for e in at.error) and not at.exception
    assert "Parameters" in [m.label for m in at.metric]


def test_two_sessions_are_isolated_and_the_shared_model_is_untouched():
    """Every page's actions, checked after each one: the shared model's mode, gradients and weights do not change."""
    from ui.resources import shared_checkpoint, state_hash

    a, b = new_app(), new_app()
    shared = shared_checkpoint(None).model
    before = state_hash(shared)

    def untouched(action: str) -> None:
        assert not shared.training, f"{action} switched the shared model to training mode"
        assert all(p.grad is None for p in shared.parameters()), f"{action} left gradients on the shared model"
        assert state_hash(shared) == before, f"{action} changed the shared model's weights"

    untouched("the Model page")
    run_eap(a)
    untouched("an EAP run")
    a.button(key="attr_run").click().run()
    untouched("explaining an image")
    a.selectbox(key="method").set_value("learned").run()
    a.select_slider(key="sparsity_param_node").set_value(0.5).run()
    a.slider(key="steps").set_value(20).run()
    a.button(key="run_circuit").click().run()
    untouched("learned masks")
    goto(a, "prune")
    a.multiselect(key="row_pick").set_value([0, 1]).run()
    a.button(key="rows_off").click().run()
    untouched("toggling rows")
    a.number_input(key="ft_steps").set_value(5).run()
    a.button(key="ft_run").click().run()
    untouched("fine-tuning")
    goto(a, "export")
    untouched("the Export page")
    goto(a, "atlas")
    untouched("the Atlas page")
    goto(b, "prune")
    assert int(a.session_state["app"].keep.sum()) < 216
    assert int(b.session_state["app"].keep.sum()) == 216
    assert "results" not in b.session_state
    untouched("a second session")


def test_compare_page_loads_a_sweep_csv_and_applies_a_point(tmp_path):
    from vitcore import load_checkpoint
    from vitcore.pruning.report import write_csv

    names = load_checkpoint().model.components.names
    kept = names[::2]
    rows = [
        {
            "method": "baseline",
            "setting": 1.0,
            "finetuned": False,
            "kept_heads": 108,
            "kept_chunks": 108,
            "params": 2761928,
            "macs": 189522816,
            "latency_b1_ms": 6.0,
            "throughput_b64_img_s": 300.0,
            "top1_chosen": 0.6,
            "top1_all": 0.2,
            "kl": 0.0,
            "discovery_s": 0.0,
            "kept_components": " ".join(names),
        },
        {
            "method": "eap",
            "setting": 0.5,
            "finetuned": True,
            "kept_heads": 54,
            "kept_chunks": 54,
            "params": 1500000,
            "macs": 96000000,
            "latency_b1_ms": 4.0,
            "throughput_b64_img_s": 520.0,
            "top1_chosen": 0.5,
            "top1_all": 0.1,
            "kl": 0.3,
            "discovery_s": 1.0,
            "kept_components": " ".join(kept),
        },
    ]
    write_csv(rows, tmp_path / "s.csv")
    at = goto(new_app(), "compare")
    assert at.radio(key="sweep_source") and at.multiselect(key="sweep_methods")
    at.radio(key="sweep_source").set_value("Load a saved CSV").run()
    at.file_uploader(key="sweep_csv").upload("s.csv", (tmp_path / "s.csv").read_bytes()).run()
    assert not at.error and len(at.dataframe) == 1
    at.selectbox(key="sweep_pick").set_value(1).run()
    at.button(key="apply_sweep").click().run()
    assert any("EAP keep 0.5" in s.value and "fine-tune again" in s.value for s in at.success)
    keep = at.session_state["app"].keep
    assert [n for n, k in zip(names, keep.tolist()) if k] == kept
    older = "\n".join(
        [
            ",".join(k for k in rows[0] if k != "kept_components"),
            ",".join(str(v) for k, v in rows[1].items() if k != "kept_components"),
        ]
    )
    at.file_uploader(key="sweep_csv").clear().upload("old.csv", older.encode()).run()
    at.selectbox(key="sweep_pick").set_value(0).run()
    at.button(key="apply_sweep").click().run()
    assert any("older sweep" in e.value for e in at.error) and not at.exception
    at.file_uploader(key="sweep_csv").clear().upload("bad.csv", b"a,b\n1,2\n").run()
    assert any("Could not read 'bad.csv'" in e.value for e in at.error) and not at.exception
    header_only = ",".join(rows[0]) + "\n"
    at.file_uploader(key="sweep_csv").clear().upload("empty.csv", header_only.encode()).run()
    assert any("no rows" in w.value for w in at.warning) and not at.exception


def test_circuits_page_estimates_the_time_and_reports_a_stopped_run():
    at = goto(new_app(), "circuits")
    at.multiselect(key="class_pick").select(GOLDFISH).run()
    at.selectbox(key="method").set_value("learned").run()
    at.slider(key="steps").set_value(400).run()
    texts = [c.value for c in at.caption] + [w.value for w in at.warning]
    assert any("s expected on this machine" in t or "will take about" in t for t in texts), texts
    at.session_state["app"].running.add("circuit")  # as left behind by a run that Stop interrupted
    at.run()
    assert any("stopped before it finished" in i.value for i in at.info) and not at.exception


def test_edge_circuit_graph_toggles_components_and_feeds_the_prune_page(app):
    at = goto(app, "circuits")
    at.multiselect(key="class_pick").select(GOLDFISH)
    at.selectbox(key="method").set_value("eap")
    at.run()
    at.radio(key="granularity_eap").set_value("edge").run()
    at.button(key="run_circuit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    result = at.session_state["app"].results[-1]
    n_edges = load_checkpoint().model.edges.n_edges
    assert result.is_edge and len(result.scores) == n_edges
    assert metric(at, "Kept edges") == f"{round(0.05 * n_edges)}/{n_edges}"
    alive = at.session_state["app"].keep
    assert 0 < alive.sum() < 216  # the Prune page starts from the components the edges keep alive
    on_circuits = (metric(at, "Top-1, physically pruned"), metric(at, "KL, physically pruned"))

    goto(at, "graph")
    # the same circuit, the same figures: the Circuits page's pruned model is the one the graph draws
    assert (metric(at, "Top-1, chosen classes"), metric(at, "KL to full model")) == on_circuits
    charts = at.get("graphviz_chart")
    assert len(charts) == 1 and "digraph" in charts[0].proto.spec
    before = charts[0].proto.spec.count("penwidth")
    name = at.multiselect(key="graph_off_0").options[0]
    at.multiselect(key="graph_off_0").select(name).run()
    assert not at.exception, [e.value for e in at.exception]
    spec = at.get("graphviz_chart")[0].proto.spec
    assert f'"{name}"' in spec or spec.count("penwidth") <= before  # drawn as switched off, or its edges gone
    assert f"{name} ->" not in spec.replace('"', "")
    at.radio(key="graph_view").set_value("top paths to the logits").run()
    assert not at.exception, [e.value for e in at.exception]
    paths_spec = at.get("graphviz_chart")[0].proto.spec
    assert "logits" in paths_spec and paths_spec.count("penwidth") <= 5 * 10  # five paths, a few edges each
    at.radio(key="graph_view").set_value("strongest edges").run()
    at.button(key="graph_to_prune").click().run()
    switched = at.session_state["app"].keep
    assert switched[load_checkpoint().model.components.id(name)] == 0 and switched.sum() < alive.sum() + 1
    goto(at, "prune")
    assert metric(at, "Top-1, chosen classes")


def test_atlas_page_shows_the_shipped_atlas_and_measures_a_group(app):
    at = goto(app, "atlas")
    assert not [
        w for w in at.warning if "another checkpoint" in w.value
    ]  # the shipped atlas belongs to the shipped model (a 'machine busy' timing warning may show)
    assert (
        len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart")) >= 3
    )  # two usage maps and the similarity matrix
    assert metric(at, "KL to full model")
    group = at.multiselect(key="atlas_group")
    assert len(group.value) == 5
    at.button(key="atlas_to_prune").click().run()
    assert len(at.session_state["app"].classes) == 5 and 0 < at.session_state["app"].keep.sum() <= 216


def test_compare_page_estimates_a_sweep_and_reports_a_stopped_one():
    at = run_eap(new_app())
    goto(at, "compare")
    at.multiselect(key="sweep_methods").set_value(["eap", "acdc", "learned"]).run()
    texts = [c.value for c in at.caption] + [w.value for w in at.warning]
    assert any(
        "configurations" in t and ("s expected on this machine" in t or "will take about" in t) for t in texts
    ), texts
    at.session_state["app"].running.add("sweep")  # as left behind by a sweep that Stop interrupted
    at.run()
    assert any("sweep was stopped before it finished" in i.value for i in at.info) and not at.exception


def test_export_page_offers_int8_onnx_and_measures_the_deployment_table():
    at = new_app()
    at.session_state["app"].set_keep(torch.arange(216) % 2 == 0)  # half the components, as from the Prune page
    goto(at, "export")
    before_after = at.dataframe[0].value  # the full model against this one
    from vitcore.pruning import prune

    pruned = prune(load_checkpoint().model, torch.arange(216) % 2 == 0)
    assert before_after.loc["parameters", "this model"] == f"{sum(p.numel() for p in pruned.parameters()):,}"
    assert (
        before_after.loc["parameters", "full model"]
        == f"{sum(p.numel() for p in load_checkpoint().model.parameters()):,}"
    )
    assert "(n=2000, 95% CI " in before_after.loc["top-1, all 2,000 eval images", "this model"]  # n and interval
    at.button(key="prep_onnx-int8").click().run()
    assert not at.exception, [e.value for e in at.exception]
    int8 = media_bytes(at.download_button(key="dl_onnx-int8").proto.url)
    import onnxruntime as ort

    session = ort.InferenceSession(int8, providers=["CPUExecutionProvider"])
    assert any(n.op_type == "MatMulNBits" for n in _onnx_nodes(int8))  # weight-only int8
    assert session.run(["logits"], {"pixels": torch.zeros(2, 3, 64, 64).numpy()})[0].shape == (2, 200)
    at.button(key="deploy_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "runtime" in d.value.columns)
    assert list(table["runtime"]) == ["pytorch-eager", "onnxruntime-fp32", "onnxruntime-int8-weights"]
    assert all("→" in v for v in table["batch-1 ms (full → this)"])


def _onnx_nodes(data: bytes):
    import onnx

    return onnx.load_from_string(data).graph.node


def test_component_page_shows_a_head_and_a_chunk_and_refuses_an_unknown_name():
    at = new_app()
    at.session_state["app"].classes = ["n01443537"]
    at.query_params["component"] = "L3.H5"
    goto(at, "component")
    assert at.selectbox(key="component_pick").value == "L3.H5"
    assert len(at.get("image")) == 2 and len(at.dataframe) == 3  # views and one patch's; pushes up / down, removal
    at.slider(key="patch_row").set_value(0).run()
    at.slider(key="patch_col").set_value(7).run()
    assert not at.exception and "row 0, column 7" in " ".join(c.value for c in at.caption)
    assert "goldfish" in at.dataframe[2].value["true"].iloc[0]
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # every head's attention distance
    at.selectbox(key="component_pick").set_value("L2.C1").run()
    assert not at.exception and len(at.dataframe) == 3 and "fires" in " ".join(s.value for s in at.subheader)
    at.query_params["component"] = "L3.H99"
    at.run()
    assert any("L3.H99: there is no such head" in e.value for e in at.error) and not at.exception


def test_shortcut_page_shows_the_cheat_finds_its_circuit_and_cuts_it():
    at = new_app()
    goto(at, "shortcut")
    assert len(at.get("image")) == 6  # six marked images of other classes
    metrics = {m.label: float(m.value.rstrip("%")) for m in at.metric}
    assert metrics["Flip rate, planted"] > metrics["Flip rate, shipped"] + 20
    at.toggle(key="shortcut_marked").set_value(False).run()
    assert not at.exception and len(at.get("image")) == 6
    at.selectbox(key="shortcut_method").set_value("eap")
    at.button(key="shortcut_find").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("image")) == 7  # the top head's attention strip
    at.slider(key="shortcut_k").set_value(8).run()
    assert not at.exception
    metrics = {m.label: float(m.value.rstrip("%")) for m in at.metric}
    assert metrics["Flip rate, circuit cut"] < metrics["Flip rate, planted"] / 2
    assert metrics["Flip rate, random cut"] > metrics["Flip rate, circuit cut"]
    assert at.get("download_button")
    # the planted model is one of the sidebar's models, for every other page
    at.sidebar.radio(key="model_source").set_value("Shortcut model (planted)").run()
    assert not at.exception and "shortcut" in at.session_state["app"].ckpt.info


def test_component_links_carry_the_classes_and_heatmaps_mark_kept_components():
    import pandas as pd

    from ui.charts import component_link, heatmap, score_frames

    names = load_checkpoint().model.components.names
    heads, _ = score_frames(names, [float(i) for i in range(len(names))], set(names[:3]))
    spec = heatmap(heads, "Heads", classes=["n01629819"]).to_dict()
    cells, dots = spec["layer"]
    assert cells["encoding"]["href"]["field"] == "link" and dots["mark"]["type"] == "point"
    dot_data = pd.DataFrame(spec["datasets"][dots["data"]["name"]])
    assert sorted(dot_data["component"]) == sorted(n for n in names[:3] if ".H" in n)
    assert component_link("L3.H5", ["n01629819"]) == "component?component=L3.H5&classes=n01629819"
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["component"] = "L3.H5"
    at.query_params["classes"] = "n01629819"
    at.switch_page("pages/component.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("European fire salamander" in c.value for c in at.caption)


def test_one_image_view_follows_an_example_through_the_layers_and_switches_components_off():
    at = new_app()
    at.selectbox(key="try_example").set_value("tabby").run()
    assert not at.exception, [e.value for e in at.exception]
    at.toggle(key="follow_image").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    effects = next(d.value for d in at.dataframe if "logit change if removed (estimate)" in d.value.columns)
    assert len(effects) == 10
    at.toggle(key="try_exact").set_value(True).run()
    effects = next(d.value for d in at.dataframe if "logit change if removed (exact)" in d.value.columns)
    assert effects["logit change if removed (exact)"].notna().all()
    first = effects["component"].iloc[0]
    at.multiselect(key="try_off").set_value([first]).run()
    assert not at.exception
    assert any(f"Without {first}" in m.value for m in at.markdown)


def test_lesson_walks_from_the_first_step_to_the_download():
    at = new_app()
    goto(at, "lesson")
    assert at.selectbox(key="lesson_class").value == GOLDFISH
    at.button(key="lesson_1").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Model" and at.session_state["app"].classes == ["n01443537"]
    goto(at, "lesson")
    at.button(key="lesson_2").click().run()
    assert at.title[0].value == "Model" and at.selectbox(key="gallery_filter").value == "wrong"
    goto(at, "lesson")
    at.button(key="lesson_3").click().run()
    assert not at.exception, [e.value for e in at.exception]
    state = at.session_state["app"]
    assert at.title[0].value == "Circuits" and [r.method for r in state.results] == ["eap", "exact-patching"]
    assert any(m.label == "Overlap of kept sets (Jaccard)" for m in at.metric)
    goto(at, "lesson")
    at.button(key="lesson_4").click().run()
    assert not at.exception, [e.value for e in at.exception]
    exact = state.results[1]
    opened = at.selectbox(key="component_pick").value
    assert ".H" in opened
    # independent check with forward hooks: zeroing the opened head's slice of attn.proj's input lowers p(goldfish)
    # on most of the goldfish eval images the Component page shows
    model, eval_set, wnid = state.ckpt.model, state.eval_set, "n01443537"
    subset = eval_set.of_classes([wnid])
    x = normalize(subset.images, model.config)
    with torch.no_grad():
        p_with = model(x).softmax(-1)[:, eval_set.class_index(wnid)]
        zeros = {k: torch.zeros_like(v) for k, v in record(model, x).items()}
        p_without = patched_logits(model, x, [opened], zeros).softmax(-1)[:, eval_set.class_index(wnid)]
    assert int((p_without < p_with).sum()) * 2 > len(subset)
    higher = [
        n
        for n, s in zip(exact.component_names, exact.scores)
        if ".H" in n and s > exact.scores[exact.component_names.index(opened)]
    ]
    assert len(higher) < 8  # among exact patching's top eight heads
    goto(at, "lesson")
    at.button(key="lesson_5").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Prune" and int(at.session_state["app"].keep_mask().sum()) == len(exact.kept)
    goto(at, "lesson")
    at.button(key="lesson_6a").click().run()  # step 6 names the fine-tune panel: the page it opens has it
    assert at.title[0].value == "Prune" and at.button(key="ft_run") and at.number_input(key="ft_steps")
    goto(at, "lesson")
    at.button(key="lesson_6b").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Export" and at.download_button(key="dl_zip")
    goto(at, "lesson")
    at.button(key="lesson_7").click().run()
    assert not at.exception and at.title[0].value == "A model that cheats"


def test_an_estimate_is_followed_by_exact_patching_on_the_same_images(app):
    from vitcore.circuits import discover
    from vitcore.circuits.trust import spearman, top_overlap

    at = run_eap(app)
    result = at.session_state["app"].results[-1]
    assert at.radio(key="tier_shown").value == "exact"  # the measured tier is shown once it is there
    captions = " ".join(c.value for c in at.caption)
    assert f"exact patching's measured effects on {result.n_images} images" in captions
    model, data = load_checkpoint().model, at.session_state["app"].discovery
    truth = discover(model, data, ["n01443537"], "exact-patching", "resample", n_images=result.n_images)
    rho = spearman(result.score_tensor(), truth.score_tensor())
    overlap = top_overlap(result.score_tensor(), truth.score_tensor())
    # the page's agreement against an independent run here (the page's runs come from the workers: floats may
    # differ in the last digits, and so may a tied rank)
    shown = re.search(r"Spearman (-?[0-9.]+), (\d+) of its top 20", captions)
    assert shown and abs(float(shown[1]) - rho) <= 0.015 and abs(int(shown[2]) - overlap) <= 1
    at.radio(key="tier_shown").set_value("first").run()
    assert f"Showing **EAP on {result.n_images} images**" in " ".join(c.value for c in at.caption)


def test_circuits_and_prune_pages_show_the_same_figures_for_one_circuit(app):
    at = run_eap(app)
    state = at.session_state["app"]
    result = state.results[-1]
    patched = (metric(at, "Top-1, patched circuit"), metric(at, "KL, patched circuit"))
    assert patched == (f"{result.faithfulness['top1']:.1%}", f"{result.faithfulness['kl']:.4f}")
    pruned = (metric(at, "Top-1, physically pruned"), metric(at, "KL, physically pruned"))
    captions = " ".join(c.value for c in at.caption)
    scored = f"the discovery images the method scored: top-1 {result.faithfulness['top1']:.0%} (n={result.n_images}, "
    assert scored in captions
    assert "eval images" in captions
    goto(at, "prune")
    assert (metric(at, "Top-1, chosen classes"), metric(at, "KL to full model")) == pruned
    # and both are a forward of the pruned model on the chosen classes' eval images, recomputed here
    from vitcore.data import load_split
    from vitcore.pruning import prune

    model = load_checkpoint().model
    val = load_split(None, "val")
    chosen = val.of_classes(["n01443537"])
    with torch.no_grad():
        small = prune(model, model.components.mask_from_keep(result.kept))
        top1 = float((small(normalize(chosen.images, model.config)).argmax(1) == chosen.labels).float().mean())
    assert pruned[0] == f"{top1:.1%}"
