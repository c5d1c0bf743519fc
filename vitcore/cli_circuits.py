"""Commands ``circuits`` and ``bench-circuits``."""

from __future__ import annotations

import argparse
import json
import time

import torch

from .cli import command


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from .circuits import CORRUPTIONS, METHODS, METRICS

    p = sub.add_parser("circuits", help="score components for chosen classes (EAP, EAP-IG, ACDC, learned masks)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--data", default=None, help="discovery data (train split used; default: bundled subset)")
    p.add_argument("--eval-data", default=None, help="eval data (val split used; default: bundled subset)")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--classes", required=True, help="comma-separated wnids")
    p.add_argument("--corruption", choices=CORRUPTIONS, default="resample")
    p.add_argument("--metric", choices=METRICS, default=None, help="default: ce for EAP, kl for the others")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--tau", type=float, default=None, help="ACDC threshold (default 0.05)")
    group.add_argument("--keep", type=float, default=None, help="keep ratio for EAP/EAP-IG (default 0.5)")
    group.add_argument("--sparsity", type=float, default=None, help="learned masks target sparsity (default 0.5)")
    p.add_argument("--images", type=int, default=None, help="number of discovery images (default: all of the classes)")
    p.add_argument("--n-steps", type=int, default=5, help="EAP-IG integration steps")
    p.add_argument("--steps", type=int, default=200, help="learned-mask optimisation steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the result (.json, or .csv for people)")
    p.add_argument("--top", type=int, default=10, help="rows of the ranked table to print")

    p = sub.add_parser("bench-circuits", help="time every method on the shipped model for one class set")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--classes", default=None, help="comma-separated wnids (default: the first three classes)")
    p.add_argument("--threads", type=int, default=None)


def _progress_bar(desc: str):
    from tqdm import tqdm

    bar = tqdm(total=100, desc=desc, leave=False, unit="%")

    def update(fraction: float) -> None:
        bar.n = round(100 * fraction)
        bar.refresh()

    return bar, update


@command("circuits")
def _circuits(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .circuits import DEFAULT_METRIC, check_method_metric, discover
    from .data import load_split
    from .pruning import prune
    from .pruning.sweep import evaluate_against
    from .evaluate import predict_logits

    metric = args.metric or DEFAULT_METRIC[args.method]
    check_method_metric(args.method, metric)
    ckpt = load_checkpoint(args.checkpoint)
    discovery = load_split(args.data, "train", progress=True)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    print(f"method {args.method}: optimises/ranks by metric '{metric}', corruption '{args.corruption}'")
    bar, update = _progress_bar(args.method)
    kwargs = {k: v for k, v in (("tau", args.tau), ("keep", args.keep), ("sparsity", args.sparsity)) if v is not None}
    result = discover(
        ckpt.model, discovery, classes, args.method, args.corruption, metric, args.images, args.seed,
        n_steps=args.n_steps, steps=args.steps, model_sha256=ckpt.sha256, progress=update, **kwargs,
    )
    bar.close()
    if args.out:
        result.save(args.out)
    order = sorted(range(len(result.scores)), key=lambda i: -result.scores[i])
    print(f"{'rank':>4}  {'component':<8} {'score':>10}")
    for rank, i in enumerate(order[: args.top], 1):
        print(f"{rank:>4}  {result.component_names[i]:<8} {result.scores[i]:>10.4g}")
    f = result.faithfulness
    print(f"kept {len(result.kept or [])}/{len(result.scores)} components | {result.n_images} images | {result.wall_time_s:.1f} s | "
          f"{result.forward_passes:g} forward + {result.backward_passes:g} backward pass equivalents")
    print(f"circuit on discovery images (removed components patched): KL {f['kl']:.4f}  top1 {f['top1']:.3f}  CE {f['ce']:.3f}  logit diff {f['logit_diff']:.3f}")
    eval_set = load_split(args.eval_data, "val")
    chosen = torch.isin(eval_set.labels, torch.tensor([eval_set.class_index(w) for w in classes]))
    keep = ckpt.model.components.mask_from_keep(result.kept or [])
    if keep.sum() == 0:
        print("the circuit keeps no component; nothing to prune")
        return 0
    ev = evaluate_against(predict_logits(ckpt.model, eval_set.images), prune(ckpt.model, keep), eval_set, chosen)
    print(f"pruned model on the eval set (removed components zeroed): top1 chosen {ev.top1_chosen:.3f}  top1 all {ev.top1_all:.3f}  KL chosen {ev.kl:.4f}")
    return 0


@command("bench-circuits")
def _bench_circuits(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .circuits import acdc, build_task, circuit_faithfulness, counterfactual, discover
    from .data import load_split

    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model
    data = load_split(args.data, "train")
    classes = args.classes.split(",") if args.classes else data.wnids[:3]
    task = build_task(model, data, classes)
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(3):
            model(task.inputs)
        forward_s = (time.perf_counter() - t0) / 3
    rows = []
    cf = counterfactual(model, task, "resample")
    configs = [("eap", {"keep": 0.5}), ("eap-ig", {"keep": 0.5}), ("acdc", {"tau": 0.05}), ("learned", {"sparsity": 0.5})]
    for method, kw in configs:
        res = discover(model, data, classes, method, "resample", **kw)
        # matched sparsity: keep the top 50% of each method's scores
        keep = torch.zeros(len(res.scores))
        keep[torch.argsort(res.score_tensor(), descending=True)[: len(res.scores) // 2]] = 1
        f50 = circuit_faithfulness(model, task, keep, cf)
        rows.append({"method": method, "setting": kw, "wall_s": res.wall_time_s, "x_forward": res.wall_time_s / forward_s,
                     "fwd_equiv": res.forward_passes, "bwd_equiv": res.backward_passes, "kl_at_50pct": f50["kl"], "top1_at_50pct": f50["top1"],
                     "own_kept": len(res.kept or []), "own_kl": res.faithfulness["kl"]})
    t0 = time.perf_counter()
    fast = acdc(model, task, cf, 0.05)
    fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = acdc(model, task, cf, 0.05, naive=True)
    slow_s = time.perf_counter() - t0
    print(f"classes {','.join(classes)} | {len(task)} images | one forward over them: {forward_s * 1e3:.1f} ms | threads {torch.get_num_threads()}")
    print(f"| method | setting | wall s | x one forward | fwd equiv | bwd equiv | KL @50% kept | top1 @50% kept | own kept | own KL |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items())
        print(f"| {r['method']} | {setting} | {r['wall_s']:.2f} | {r['x_forward']:.1f} | {r['fwd_equiv']:.1f} | {r['bwd_equiv']:.1f} | {r['kl_at_50pct']:.4f} | {r['top1_at_50pct']:.3f} | {r['own_kept']} | {r['own_kl']:.4f} |")
    same = torch.equal(fast.kept_mask, slow.kept_mask)
    print(f"ACDC tau=0.05: cached+batched {fast_s:.2f} s ({fast.forward_passes:.1f} fwd equiv) vs naive {slow_s:.2f} s ({slow.forward_passes:.1f} fwd equiv): "
          f"speed-up {slow_s / fast_s:.1f}x, same removed set: {same}")
    print(json.dumps({"rows": rows, "acdc_speedup": slow_s / fast_s, "same_removed_set": same}, default=str))
    return 0
