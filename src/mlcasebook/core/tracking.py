"""Experiment tracking on a local MLflow store (SQLite + an artifact folder).

Every train/evaluate run logs its params, metrics and artifacts through ``tracked_run``; pass
``enabled=False`` (the CLI's ``--no-track``) and the same calls do nothing. The store lives in
``$MLCASEBOOK_TRACKING_DIR`` or the user data dir; browse it with
``mlflow ui --backend-store-uri sqlite:///<dir>/mlflow.db``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs


def tracking_dir() -> Path:
    path = Path(os.environ.get("MLCASEBOOK_TRACKING_DIR") or Path(platformdirs.user_data_dir("mlcasebook")) / "mlruns")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Tracker:
    """Thin facade over one MLflow run; a disabled tracker swallows every call."""

    def __init__(self, mlflow_module=None):
        self._mlflow = mlflow_module
        self.run_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self._mlflow is not None

    def params(self, params: dict[str, Any]) -> None:
        if self._mlflow:
            self._mlflow.log_params({k: _short(v) for k, v in params.items()})

    def metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._mlflow:
            numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            self._mlflow.log_metrics(numeric, step=step)

    def artifact(self, path: Path | str) -> None:
        if self._mlflow and Path(path).exists():
            self._mlflow.log_artifact(str(path))


@contextlib.contextmanager
def tracked_run(experiment: str, run_name: str, enabled: bool = True) -> Iterator[Tracker]:
    if not enabled:
        yield Tracker()
        return
    import logging

    import mlflow  # imported late: it costs seconds and --no-track runs never need it

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    root = tracking_dir()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(root / "artifacts" / experiment).as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as active:
        tracker = Tracker(mlflow)
        tracker.run_id = active.info.run_id
        yield tracker


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."
