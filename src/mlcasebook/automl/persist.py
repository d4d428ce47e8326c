"""Save and load a fitted AutoML result: skops for the pipeline (no bare pickle), JSON + CSV for the rest.

Loading checks every type stored in the skops file against an allow-list of modules
(scikit-learn, LightGBM, NumPy, SciPy, pandas and this package); a file that asks for anything
else is refused with a ``DataError`` naming the type, so an untrusted folder cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.checkpoint import atomic_write_bytes, atomic_write_text
from ..core.errors import DataError

MODEL_FILE, META_FILE, BOARD_FILE, CARD_FILE = "model.skops", "meta.json", "leaderboard.csv", "model_card.md"
TRUSTED_PREFIXES = ("sklearn.", "lightgbm.", "numpy.", "scipy.", "pandas.", "mlcasebook.automl.",
                    "collections.OrderedDict", "builtins.", "functools.partial")
FORMAT_VERSION = 1


def save_result(result, out_dir: Path | str) -> Path:
    import skops.io as sio

    from .card import model_card, model_card_html

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / MODEL_FILE, sio.dumps(result.pipeline))
    meta = {"format": FORMAT_VERSION, "task": result.task, "metric": result.metric, "target": result.target,
            "classes": None if result.classes_ is None else [_plain(c) for c in result.classes_],
            "cv_score": result.cv_score, "info": result.info}
    atomic_write_text(out_dir / META_FILE, json.dumps(meta, indent=2, default=_plain) + "\n")
    atomic_write_text(out_dir / BOARD_FILE, result.leaderboard.to_csv(index=False))
    atomic_write_text(out_dir / CARD_FILE, model_card(result))
    atomic_write_text(out_dir / CARD_FILE.replace(".md", ".html"), model_card_html(result))
    return out_dir


def load_result(out_dir: Path | str):
    import skops.io as sio

    from .api import AutoMLResult

    out_dir = Path(out_dir)
    model_path, meta_path = out_dir / MODEL_FILE, out_dir / META_FILE
    for path in (model_path, meta_path):
        if not path.is_file():
            raise DataError(f"{path} not found: {out_dir} is not a saved AutoML model",
                            hint="point at the --out folder of `mlcasebook automl fit`")
    try:
        meta = json.loads(meta_path.read_text())
        untrusted = sio.get_untrusted_types(file=model_path)
    except Exception as exc:
        raise DataError(f"{out_dir} holds a corrupt model ({type(exc).__name__}: {exc})") from exc
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise DataError(f"{model_path} asks to load types outside the allow-list: {', '.join(refused[:5])}",
                        hint="only load models you fitted yourself")
    pipeline = sio.load(model_path, trusted=untrusted)
    board = pd.read_csv(out_dir / BOARD_FILE) if (out_dir / BOARD_FILE).is_file() else pd.DataFrame()
    classes = None if meta["classes"] is None else np.asarray(meta["classes"], dtype=object)
    if classes is not None:
        classes = pipeline.named_steps["model"].classes_
    return AutoMLResult(pipeline, meta["task"], meta["metric"], meta["target"], classes, board,
                        meta["cv_score"], meta.get("info", {}))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    return value
