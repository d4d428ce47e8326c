"""Top-N ranking on MovieLens-100k: our three phases against `implicit` ALS, Surprise SVD and a
popularity ranker, on the same splits and the same full-ranking protocol.

Tables: (1) random 80/20 split, (2) per-user time split (last 20 % of each user's ratings),
both with relevant = held-out rating >= 4 and every unseen item ranked; (3) the NCF protocol
(leave-last-out, 99 sampled negatives).

    .venv/bin/python benchmarks/recsys_ranking.py --json docs/results/recsys_ranking.json
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch

from common import load_benchmark_data, print_table, save
from mlcasebook.recsys import evaluate
from mlcasebook.recsys.models.registry import model_class
from peers import ImplicitALSPeer, SurprisePeer

OURS = ["popularity", "rules", "item-knn", "mf", "als", "bpr", "ease", "sequential"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(OURS), help="our models, comma-separated")
    parser.add_argument("--no-surprise", action="store_true", help="skip Surprise SVD (slow to rank)")
    parser.add_argument("--no-ncf", action="store_true", help="skip the NCF protocol table")
    parser.add_argument("--json", type=Path, default=Path("docs/results/recsys_ranking.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)

    data = load_benchmark_data(args.dataset, args.data_dir)
    factories = {name: model_class(name) for name in args.models.split(",")}
    factories["peer: implicit-als-64"] = partial(ImplicitALSPeer, factors=64, seed=args.seed)
    with_surprise = factories | ({} if args.no_surprise else {"peer: surprise-SVD": partial(SurprisePeer, "SVD")})

    tables = {}
    train, test = evaluate.random_split(data, 0.2, seed=args.seed)
    tables["random_80_20"] = evaluate.ranking_experiment(train, test, with_surprise, k=10)
    print_table(tables["random_80_20"], f"{data.name}: random 80/20 split (seed {args.seed}), full ranking, k=10")
    train, test = evaluate.time_split(data, 0.2)
    tables["time_split"] = evaluate.ranking_experiment(train, test, factories, k=10)
    print_table(tables["time_split"], f"{data.name}: per-user time split (last 20 %), full ranking, k=10")
    if not args.no_ncf:
        tables["ncf"] = evaluate.ncf_experiment(data, factories, n_negatives=99, k=10, seed=args.seed)
        print_table(tables["ncf"], f"{data.name}: NCF protocol (leave-last-out, 99 sampled negatives)")
    save(args.json, {"dataset": data.name, "seed": args.seed, "relevant_min_rating": 4.0, "k": 10}, tables)


if __name__ == "__main__":
    main()
