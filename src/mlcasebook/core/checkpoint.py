"""Checkpoints: written atomically, loaded without unpickling anything.

A checkpoint is a directory-free single file: torch's safe ``weights_only`` format holding a
dict of tensors, numpy arrays (stored as tensors) and JSON-able metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CasebookError

_META_KEY = "__meta_json__"


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(path: Path | str, arrays: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
    """Save named arrays/tensors plus JSON metadata (hyper-parameters, id maps, versions)."""
    payload: dict[str, Any] = {}
    for name, value in arrays.items():
        if name == _META_KEY:
            raise ValueError(f"{_META_KEY} is reserved")
        payload[name] = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.from_numpy(
            np.ascontiguousarray(value)
        )
    payload[_META_KEY] = json.dumps(meta or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load arrays (as numpy) and metadata. Refuses anything but tensors and strings."""
    path = Path(path)
    if not path.is_file():
        raise CasebookError(f"checkpoint not found: {path}", hint="train a model first, or pass --model PATH")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or truncated files
        raise CasebookError(f"not a valid mlcasebook checkpoint: {path} ({exc.__class__.__name__})",
                            hint="the file is corrupt or was not written by mlcasebook; retrain it") from exc
    if not isinstance(payload, dict) or _META_KEY not in payload:
        raise CasebookError(f"not a valid mlcasebook checkpoint: {path}", hint="retrain the model")
    meta = json.loads(payload.pop(_META_KEY))
    return {name: tensor.numpy() for name, tensor in payload.items()}, meta
