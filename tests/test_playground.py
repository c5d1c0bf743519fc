"""Playground: per-session figures of keep-sets over a shared base model, checked against direct computation."""

import hashlib

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_imageset, tiny_model

from vitcore.data import normalize
from vitcore.playground import NothingKeptError, Playground


def weights_hash(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode() + v.numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def pg():
    model, data = tiny_model(), tiny_imageset()
    return Playground(model, data, ["n00000001", "n00000003"], latency_repeats=3), model, data


def test_fast_figures_equal_a_masked_forward_of_the_full_model(pg):
    playground, model, data = pg
    mask = model.components.ones()
    mask[model.components.id("L0.H1")] = 0
    mask[model.components.id("L1.C0")] = 0
    figures = playground.fast(mask)
    chosen = torch.isin(data.labels, torch.tensor([1, 3]))
    x, y = normalize(data.images[chosen], model.config), data.labels[chosen]
    with torch.no_grad():
        masked, full = model(x, mask=mask), model(x)  # zero-masking the full model: no pruned copy involved
    assert figures.kept == len(mask) - 2
    assert figures.top1_chosen == pytest.approx(float((masked.argmax(1) == y).float().mean()))
    kl = F.kl_div(F.log_softmax(masked, -1), F.log_softmax(full, -1), log_target=True, reduction="none").sum(-1).mean()
    assert figures.kl_chosen == pytest.approx(float(kl), abs=1e-5)
    assert (
        figures.params
        == sum(p.numel() for p in playground.model_for(mask).parameters())
        < sum(p.numel() for p in model.parameters())
    )
    assert figures.latency_b1_ms is None  # the fast tier times nothing
    assert playground.measure(mask) is figures and figures.latency_b1_ms > 0


def test_slow_figures_cover_every_eval_image_and_results_are_cached(pg):
    playground, model, data = pg
    mask = model.components.ones()
    mask[0] = 0
    figures = playground.slow(mask)
    with torch.no_grad():
        pred = model(normalize(data.images, model.config), mask=mask).argmax(1)
    assert figures.top1_all == pytest.approx(float((pred == data.labels).float().mean()))
    assert (
        figures.throughput_b64 is None and playground.measure(mask).throughput_b64 > 0
    )  # timings come with measure, when quiet
    if not figures.speedup.busy:  # a busy timing is measured again on the next call, by design
        assert playground.fast(mask) is figures
    assert playground.model_for(mask) is playground.model_for(mask.clone())
    assert playground.model_for(model.components.ones()) is model  # keep-all is the base itself, never a copy


def test_the_first_estimate_uses_a_stratified_sample_and_the_exact_figure_adds_the_rest(pg, monkeypatch):
    import vitcore.compute.figures as module

    monkeypatch.setattr(module, "SAMPLE_SIZE", 10)
    playground, model, data = pg
    mask = model.components.ones()
    mask[2] = 0
    sample = playground.sample_index()
    assert torch.bincount(data.labels[sample]).tolist() == [2] * 5  # 10 images, 2 of each of the 5 classes
    est = playground.estimate(mask)
    with torch.no_grad():
        pred = model(normalize(data.images, model.config), mask=mask).argmax(1)
    p = float((pred[sample] == data.labels[sample]).float().mean())
    assert est.top1_all_estimate == pytest.approx(p) and est.top1_all_se == pytest.approx((p * (1 - p) / 10) ** 0.5)
    assert est.top1_all is None
    assert playground.slow(mask).top1_all == pytest.approx(float((pred == data.labels).float().mean()))


def test_nothing_kept_is_refused_and_the_shared_model_is_untouched(pg):
    playground, model, data = pg
    before, mode = weights_hash(model), model.training
    with pytest.raises(NothingKeptError, match="keep at least one"):
        playground.fast(torch.zeros(len(model.components)))
    mask = model.components.ones()
    mask[3] = 0
    playground.slow(mask)
    tuned = playground.model_for(mask).clone()
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(1.0)
    playground.replace_model(mask, tuned)
    assert (
        playground.model_for(mask) is tuned and playground.fast(mask).top1_all is None
    )  # figures recomputed for the new model
    assert weights_hash(model) == before and model.training == mode and all(p.grad is None for p in model.parameters())


def test_changing_classes_clears_figures(pg):
    playground, model, data = pg
    mask = model.components.ones()
    a = playground.fast(mask)
    playground.set_classes(["n00000000"])
    b = playground.fast(mask)
    assert a is not b and len(playground.chosen) == int((data.labels == 0).sum())


def test_speedup_flags_a_wide_spread_and_the_cost_model_fits_a_line(monkeypatch):
    from vitcore.pruning import latency
    from vitcore.pruning.counts import count_macs

    assert not latency.SpeedUp(1.5, 1.4, 1.6, 6.0, 4.0, 15).busy
    assert latency.SpeedUp(1.5, 1.0, 2.0, 6.0, 4.0, 15).busy  # (2.0 - 1.0) / 1.5 > 0.25
    models = [tiny_model(), tiny_model(heads=[1, 1, 1]), tiny_model(heads=[0, 1, 0], mlp_widths=[8, 8, 8])]
    mmacs = [count_macs(m.config) / 1e6 for m in models]
    fake = {
        str(i): {"median_ms": 2.0 + 30.0 * x} for i, x in enumerate(mmacs)
    }  # an exact line: 2 ms + 30 ms per M MACs
    monkeypatch.setattr(latency, "time_forward", lambda named, batch, repeats, threads: fake)
    fitted = latency.LatencyModel.fit(models)
    assert fitted.intercept_ms == pytest.approx(2.0) and fitted.slope_ms_per_mmac == pytest.approx(30.0)
    assert fitted.predict_ms(models[1].config) == pytest.approx(2.0 + 30.0 * mmacs[1])


def test_pruned_keep_sets_report_a_paired_speedup_cached_per_architecture(pg):
    playground, model, data = pg
    a = model.components.ones()
    a[0] = 0
    b = model.components.ones()
    b[1] = 0  # another head of the same layer: the same shapes
    fa, fb = playground.measure(a), playground.measure(b)
    assert fa.speedup is not None and fa.speedup.pairs == 3 and fa.speedup.ratio > 0
    if not fa.speedup.busy:
        assert fb.speedup is fa.speedup  # measured once per architecture
    assert playground.measure(model.components.ones()).speedup is None  # the full model is the reference


def test_a_session_given_the_shared_base_logits_runs_no_full_model_pass_over_the_eval_set():
    model, data = tiny_model(), tiny_imageset(n_per_class=80)  # 400 images: more than the throughput timing runs
    with torch.no_grad():
        shared = model(normalize(data.images, model.config))  # what the app computes once for every session
    batches = []
    handle = model.register_forward_pre_hook(lambda module, args: batches.append(len(args[0])))
    try:
        playground = Playground(model, data, ["n00000001"], latency_repeats=3, base_logits=shared)
        full = playground.slow(model.components.ones())
    finally:
        handle.remove()
    assert [b for b in batches if b > 1] == []  # the shared logits gave every figure: no batch of the full model ran
    chosen = data.labels == 1
    assert full.top1_chosen == pytest.approx(float((shared[chosen].argmax(1) == 1).float().mean()))
    assert (
        full.top1_all == pytest.approx(float((shared.argmax(1) == data.labels).float().mean()))
        and full.kl_chosen == 0.0
    )


def test_refining_all_class_top1_can_stop_between_chunks_and_go_on_later(monkeypatch):
    import vitcore.compute.figures as module

    monkeypatch.setattr(module, "SAMPLE_SIZE", 10)
    model, data = tiny_model(), tiny_imageset(n_per_class=40)  # 200 images: a sample of 10, then 190 in chunks of 50
    playground = Playground(model, data, ["n00000001"], latency_repeats=3)
    mask = model.components.ones()
    mask[1] = 0
    steps = playground.refine(mask, chunk=50)
    first = next(steps)
    assert (first.top1_all_done, first.top1_all) == (60, None)
    steps.close()  # the user toggled: this refinement stops here
    counted = []
    handle = playground.model_for(mask).register_forward_pre_hook(
        lambda m, args: counted.append(len(args[0])) if len(args[0]) > 1 else None
    )
    try:
        done = [f.top1_all_done for f in playground.refine(mask, chunk=50)]
    finally:
        handle.remove()
    assert (
        done == [60, 110, 160, 200] and sum(counted) <= 190 - 50
    )  # the first chunk came from the cache: not run again
    with torch.no_grad():
        pred = model(normalize(data.images, model.config), mask=mask).argmax(1)
    assert playground.slow(mask).top1_all == pytest.approx(float((pred == data.labels).float().mean()))


def held(monkeypatch, kind: str):
    """Hold every ``kind`` job until the returned event is set: a job still running when the page stops waiting."""
    import threading

    import vitcore.compute.figures as module

    release, job = threading.Event(), module.JOBS[kind]

    def waits(*args):
        release.wait(30)
        return job(*args)

    monkeypatch.setitem(module.JOBS, kind, waits)
    return release


def test_a_stopped_estimate_loses_no_work_and_the_next_call_runs_no_image_again(monkeypatch):
    import vitcore.compute.figures as module

    monkeypatch.setattr(module, "SAMPLE_SIZE", 50)
    model, data = tiny_model(), tiny_imageset(n_per_class=40)
    playground = Playground(model, data, ["n00000001"], latency_repeats=3)
    mask = model.components.ones()
    mask[1] = 0
    playground.measure(mask)  # the tier before
    pruned = playground.model_for(mask)
    batches = []
    handle = pruned.register_forward_pre_hook(
        lambda m, args: batches.append(len(args[0])) if len(args[0]) > 1 else None
    )  # not the batch-1 timings
    release = held(monkeypatch, "sample")
    try:
        first = playground.estimate(mask, stop=lambda: True)  # the user moved on while the sample ran
        assert first.sample_correct is None and first.top1_all_estimate is None
        release.set()  # the job goes on without the page
        rest = playground.estimate(mask)
    finally:
        release.set()
        handle.remove()
    sample = playground.sample_index()
    assert sum(batches) == len(sample)  # every sample image ran exactly once over the two calls
    with torch.no_grad():
        pred = model(normalize(data.images[sample], model.config), mask=mask).argmax(1)
    assert rest.sample_correct == int((pred == data.labels[sample]).sum())


def test_a_page_that_stops_waiting_for_a_timing_finds_it_on_the_next_call(monkeypatch):
    model = tiny_model()
    space = model.components
    mask = space.ones()
    mask[0] = 0
    playground = Playground(model, tiny_imageset(), ["n00000001"], latency_repeats=5)
    release = held(monkeypatch, "latency")
    try:
        asked = []
        stopped = playground.measure(
            mask, stop=lambda: len(asked.append(0) or asked) > 2
        )  # the user moves on while it is timed
        assert len(asked) == 3 and stopped.latency_b1_ms is None and stopped.speedup is None
    finally:
        release.set()
    measured = playground.measure(mask, stop=lambda: False)
    assert (
        measured.speedup is not None
        and measured.speedup.pairs == 5
        and measured.latency_b1_ms == measured.speedup.model_ms
    )


def test_two_threads_of_one_session_count_every_image_once(monkeypatch):
    """A Streamlit session briefly runs two script threads (the stopped run and the next one): both ask for
    the same keep-set's figures at once, and every job runs once."""
    import threading

    import vitcore.compute.figures as module

    monkeypatch.setattr(module, "SAMPLE_SIZE", 50)
    model, data = tiny_model(), tiny_imageset(n_per_class=40)
    playground = Playground(model, data, ["n00000001"], latency_repeats=3)
    mask = model.components.ones()
    mask[1] = 0
    playground.measure(mask)
    pruned = playground.model_for(mask)
    batches = []
    handle = pruned.register_forward_pre_hook(
        lambda m, args: batches.append(len(args[0])) if len(args[0]) > 1 else None
    )  # not the batch-1 timings
    out, errors = {}, []

    def run(name, work):
        try:
            out[name] = work()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=run, args=("old", lambda: playground.estimate(mask))),
        threading.Thread(target=run, args=("new", lambda: playground.slow(mask))),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        handle.remove()
    assert not errors and not any(t.is_alive() for t in threads)
    assert sum(batches) == len(data)  # the sample and the rest once each
    sample = playground.sample_index()
    with torch.no_grad():
        pred = model(normalize(data.images, model.config), mask=mask).argmax(1)
    assert out["old"].sample_correct == int((pred[sample] == data.labels[sample]).sum())
    assert out["new"].top1_all == pytest.approx(float((pred == data.labels).float().mean()))
    assert out["new"].top1_all_done == len(data)


def test_a_cost_model_far_from_the_measured_full_model_is_refit_for_this_session_only(monkeypatch):
    """A fit taken while the server was busy (here: 1 s per forward) is replaced by this session's refit
    after the first paired measurement; the shared fit object is left as it was."""
    from vitcore import playground as pg_module
    from vitcore.compute import figures as figures_module
    from vitcore.pruning.latency import LatencyModel, SpeedUp, time_forward

    model, data = tiny_model(), tiny_imageset()
    shared = LatencyModel(intercept_ms=1000.0, slope_ms_per_mmac=0.0, points=[])
    playground = Playground(model, data, ["n00000001"], latency_repeats=3, latency_model=shared)
    # a quiet reading (the tiny model's own pairs are too short to be reliably unflagged);
    # the refit itself times for real
    monkeypatch.setattr(figures_module, "measure_speedup", lambda *a, **k: SpeedUp(1.1, 1.05, 1.15, 2.0, 1.8, 3))
    mask = model.components.ones()
    mask[0] = 0
    assert playground.fast(mask).predicted_b1_ms == pytest.approx(1000.0)
    figures = playground.measure(mask)
    assert shared.intercept_ms == 1000.0 and playground.latency_model is not shared
    full_ms = time_forward({"m": model}, 1, 5, threads=1)["m"]["median_ms"]  # an independent timing of the tiny model
    assert playground.latency_model.predict_ms(model.config) < 100 * max(full_ms, 1.0)  # 1000 ms was far off
    assert figures.predicted_b1_ms == pytest.approx(
        playground.latency_model.predict_ms(playground.model_for(mask).config)
    )

    refit = playground.latency_model
    other = model.components.ones()
    other[model.components.id("L1.C0")] = 0
    monkeypatch.setattr(pg_module, "fit_latency_model", lambda base: pytest.fail("refit twice within a minute"))
    playground._cost_model_refit_at = (
        pg_module.time.monotonic()
    )  # as if the refit had just been taken, whatever it predicts
    playground.measure(other)
    assert playground.latency_model is refit


@pytest.mark.parametrize("measured_full_ms", [5.5, 12.0])  # 10% slower than predicted; 2.4x slower (a loaded machine)
def test_a_cost_model_is_kept_when_the_full_model_measures_close_to_or_slower_than_predicted(
    monkeypatch, measured_full_ms
):
    from vitcore import playground as pg_module
    from vitcore.compute import figures as figures_module
    from vitcore.pruning.latency import LatencyModel, SpeedUp

    model, data = tiny_model(), tiny_imageset()
    shared = LatencyModel(intercept_ms=5.0, slope_ms_per_mmac=0.0, points=[])
    playground = Playground(model, data, ["n00000001"], latency_repeats=3, latency_model=shared)
    reading = SpeedUp(1.2, 1.15, 1.25, measured_full_ms, measured_full_ms / 1.2, 3)
    monkeypatch.setattr(figures_module, "measure_speedup", lambda *a, **k: reading)
    monkeypatch.setattr(
        pg_module, "fit_latency_model", lambda base: pytest.fail("refit although the fit was not too slow")
    )
    mask = model.components.ones()
    mask[0] = 0
    assert playground.measure(mask).speedup.reference_ms == measured_full_ms
    assert playground.latency_model is shared


def test_a_fine_tuned_model_outlives_any_number_of_other_keep_sets(pg):
    """The session's cache of pruned copies drops its oldest; a model given by replace_model (fine-tuned) is
    not among them, or Export would re-prune the base model while its provenance says fine-tuned."""
    playground, model, data = pg
    space = model.components
    tuned_mask = space.ones()
    tuned_mask[0] = 0
    tuned = playground.model_for(tuned_mask).clone()
    with torch.no_grad():
        next(tuned.parameters()).add_(1.0)  # weights no pruning of the base can give
    playground.replace_model(tuned_mask, tuned)
    others = [(i, j) for i in range(1, len(space)) for j in range(i + 1, len(space))][
        :40
    ]  # far more than the cache holds
    for i, j in others:
        other = space.ones()
        other[[i, j]] = 0
        playground.model_for(other)
    assert playground.model_for(tuned_mask) is tuned
    assert (
        weights_hash(playground.model_for(tuned_mask))
        == weights_hash(tuned)
        != weights_hash(playground.model_for(space.ones()))
    )
    playground.forget(tuned_mask)  # forgetting it goes back to pruning the base
    assert playground.model_for(tuned_mask) is not tuned


def test_with_no_class_chosen_the_fast_tier_uses_a_fixed_draw_spread_over_classes():
    from vitcore import load_checkpoint, load_split
    from vitcore.compute.figures import FAST_BUDGET, SAMPLE_SIZE

    model, data = load_checkpoint(None).model, load_split(None, "val")
    playground = Playground(model, data, [], latency_repeats=3)
    index = playground.chosen
    assert len(index) == FAST_BUDGET < SAMPLE_SIZE
    assert len(data.labels[index].unique()) >= FAST_BUDGET * 0.8  # spread over many classes, not the first few
    assert torch.equal(Playground(model, data, [], latency_repeats=3).chosen, index)  # the same draw every time
    mask = model.components.ones()
    mask[[0, 30, 100]] = 0
    figures = playground.fast(mask)
    with torch.no_grad():  # by hand: the masked full model on exactly those images
        masked = model(normalize(data.images[index], model.config), mask=mask)
    assert figures.top1_chosen == pytest.approx(float((masked.argmax(1) == data.labels[index]).float().mean()))
