"""Model names the CLI, the service and the benchmarks use, mapped to classes.

Imports are lazy so that `mlcasebook --help` stays fast and one family's heavy dependency does
not load for another.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

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


def load_model(path, classes: Mapping[str, type[Recommender]] | None = None) -> Recommender:
    """Load a saved model; the checkpoint records its name, looked up in ``classes`` when given
    (e.g. a model of your own) or else in this registry."""
    from ...core.checkpoint import load_checkpoint

    name = load_checkpoint(path)[1].get("model", "?")
    if classes is None:
        return model_class(name).load(path)
    if name not in classes:
        raise CasebookError(f"{path} holds a '{name}' model", hint=f"known models: {sorted(classes)}")
    return classes[name].load(path)
