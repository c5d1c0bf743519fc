"""Do groups of related classes show in an atlas's similarity matrix?

Within-group circuit overlap against random groups.

Run: python benchmarks/atlas_groups.py ATLAS_DIR --out docs/measurements/atlas_groups_METHOD.json [--method M]
For each hand-picked group of related Tiny ImageNet classes: the mean Jaccard overlap of its classes'
circuits, the mean over all pairs of classes, and the share of 2,000 random groups of the same size
whose mean overlap is at least as high (a permutation p-value). Also the ten most similar pairs.
"""

import argparse
import random
import statistics

from vitcore.atlas import load_atlas, similarity
from vitcore.data import load_split
from vitcore.measurement import write_measurement

GROUPS = {
    "dogs": ["n02106662", "n02099712", "n02099601", "n02094433", "n02085620", "n02113799"],
    "cats": ["n02124075", "n02123045", "n02123394", "n02125311", "n02129165"],
    "road vehicles": [
        "n04146614",
        "n04285008",
        "n04487081",
        "n03796401",
        "n03977966",
        "n03670208",
        "n03100240",
        "n02814533",
    ],
    "fruit": ["n07749582", "n07747607", "n07753592", "n07768694"],
    "insects": [
        "n02233338",
        "n02236044",
        "n02226429",
        "n02231487",
        "n02190166",
        "n02206856",
        "n02165456",
        "n02268443",
        "n02279972",
        "n02281406",
    ],
}


def mean_overlap(sim, idx: list[int]) -> float:
    return statistics.mean(float(sim[i, j]) for a, i in enumerate(idx) for j in idx[a + 1 :])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("atlas")
    p.add_argument("--method", default=None, help="default: the atlas's first method")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--out", required=True, help="e.g. docs/measurements/atlas_groups_eap.json")
    args = p.parse_args()
    atlas = load_atlas(args.atlas)
    method = args.method or atlas.methods[0]
    sim = similarity(atlas, method)
    n = len(atlas.wnids)
    rng = random.Random(0)
    pairs = [(float(sim[i, j]), i, j) for i in range(n) for j in range(i + 1, n)]
    overall = statistics.mean(s for s, _, _ in pairs)
    groups = {}
    for name, wnids in GROUPS.items():
        idx = [atlas.wnids.index(w) for w in wnids]
        within = mean_overlap(sim, idx)
        null = [mean_overlap(sim, rng.sample(range(n), len(idx))) for _ in range(args.draws)]
        groups[name] = {
            "classes": len(idx),
            "within": round(within, 4),
            "p_random_at_least": round(sum(v >= within for v in null) / len(null), 4),
        }
        print(name, groups[name])
    data = load_split(None, "val")
    names = dict(zip(data.wnids, data.names))
    top = [
        {
            "a": names.get(atlas.wnids[i], atlas.wnids[i]),
            "b": names.get(atlas.wnids[j], atlas.wnids[j]),
            "jaccard": round(s, 4),
        }
        for s, i, j in sorted(pairs, reverse=True)[:10]
    ]
    result = {
        "atlas": args.atlas,
        "method": method,
        "classes": n,
        "mean_overlap_all_pairs": round(overall, 4),
        "min_overlap": round(min(s for s, _, _ in pairs), 4),
        "max_overlap": round(max(s for s, _, _ in pairs), 4),
        "groups": groups,
        "top_pairs": top,
    }
    print(result)
    write_measurement(args.out, result)


if __name__ == "__main__":
    main()
