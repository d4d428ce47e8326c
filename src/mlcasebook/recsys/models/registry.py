"""Model names the CLI, the service and the benchmarks use, mapped to classes.

Imports are lazy so that `mlcasebook --help` stays fast and one family's heavy dependency does
not load for another.
"""

from __future__ import annotations

import importlib

from ...core.errors import CasebookError
from .base import Recommender

# name -> (module, class); the order is the phase ladder's order
MODELS: dict[str, tuple[str, str]] = {
    "popularity": ("baselines", "PopularityRecommender"),
    "rules": ("rules", "RuleBasedRecommender"),
    "baseline": ("baselines", "BiasBaseline"),
    "item-knn": ("knn", "ItemKNN"),
    "mf": ("mf", "BiasedMF"),
    "svdpp": ("mf", "SVDpp"),
    "bayesian-mf": ("bayesian", "BayesianMF"),
    "als": ("ranking", "ALSRanker"),
    "bpr": ("ranking", "BPRRanker"),
    "ease": ("ranking", "EASERanker"),
    "sequential": ("sequential", "SequentialRecommender"),
}


def model_class(name: str) -> type[Recommender]:
    if name not in MODELS:
        raise CasebookError(f"unknown model '{name}'", hint=f"choose one of: {', '.join(MODELS)}")
    module, cls = MODELS[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def load_model(path) -> Recommender:
    """Load a saved model of any registered kind (the checkpoint records its name)."""
    from ...core.checkpoint import load_checkpoint

    _, meta = load_checkpoint(path)
    return model_class(meta.get("model", "?")).load(path)
