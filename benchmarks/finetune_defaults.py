"""Which fine-tuning defaults help the Prune page: EAP keep-0.5 circuit of three classes, physically pruned,
fine-tuned by each variant with three seeds; chosen-class top-1, all-class top-1 and KL on the bundled eval set.

    python benchmarks/finetune_defaults.py
"""

import time

from vitcore import load_checkpoint, load_split
from vitcore.circuits import discover
from vitcore.evaluate import predict_logits
from vitcore.pruning import prune
from vitcore.pruning.evaluation import evaluate_against
from vitcore.pruning.finetune import finetune_steps

CLASSES = ["n01443537", "n01629819", "n01641577"]


def main() -> None:
    ckpt = load_checkpoint()
    model, discovery, eval_set = ckpt.model, load_split(None, "train"), load_split(None, "val")
    keep = model.components.mask_from_keep(discover(model, discovery, CLASSES, "eap").kept)
    base, chosen = predict_logits(model, eval_set.images), eval_set.chosen(CLASSES)
    before = evaluate_against(base, prune(model, keep), eval_set, chosen)
    print(
        f"full model chosen top-1 {float((base[chosen].argmax(1) == eval_set.labels[chosen]).float().mean()):.3f}; "
        f"pruned before fine-tuning: chosen {before.top1_chosen:.3f} all {before.top1_all:.3f} KL {before.kl:.3f}"
    )
    focus = discovery.chosen(CLASSES).nonzero().flatten()
    variants = {
        "all data, lr 2e-4 (old default)": {"lr": 2e-4},
        "half chosen, lr 2e-4": {"lr": 2e-4, "focus": focus},
        "half chosen, lr 1e-4 (default)": {"lr": 1e-4, "focus": focus},
    }
    for name, kw in variants.items():
        for seed in (0, 1, 2):
            pruned, t0 = prune(model, keep), time.perf_counter()
            finetune_steps(pruned, discovery, 40, teacher=model, seed=seed, **kw)
            e = evaluate_against(base, pruned, eval_set, chosen)
            print(
                f"{name}, seed {seed}: chosen {e.top1_chosen:.3f} all {e.top1_all:.3f} KL {e.kl:.3f} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
