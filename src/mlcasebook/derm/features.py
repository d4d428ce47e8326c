"""Cached activations of the frozen trunk: computed once per image and view, reused by every epoch.

The frozen part of a Lite network (stem + blocks before ``cut``) costs ~85 % of a forward pass
on CPU, and its output never changes during fine-tuning. So each training image is pushed
through it once per *view* — a fixed augmentation (one dihedral element, a small rotation, zoom
and colour jitter drawn from the seed) — and the fp16 activations land in a memory-mapped file
``(views, images, C, H, W)``. Each epoch then picks one view per image: the augmentation the
chapter uses, paid for once. Calibration images get the four flips used at test time, unjittered,
so their cached logits equal ``DermClassifier.logits(tta=True)``.

The file is filled in chunks with a progress bar and a small sidecar recording how many images
are done, so an interrupted run resumes where it stopped. The name hashes everything that
determines the content (backbone, size, cut, image ids, views, seed, augmentation version).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import atomic_write_text
from ..core.progress import bar
from ..core.sources import cache_dir

CHUNK = 64  # images per write: a few seconds of work, so an interruption loses little


def cache_path(parts: dict, folder: Path | None = None) -> Path:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    root = folder or cache_dir() / "derm" / "trunk"
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{parts['backbone']}-{parts['image_size']}-cut{parts['cut']}-{parts['name']}-{digest}.npy"


def cached_activations(path: Path, images: np.ndarray, n_views: int, trunk: Callable[[torch.Tensor], torch.Tensor],
                       make_view: Callable[[torch.Tensor, np.ndarray, int], torch.Tensor], description: str,
                       batch_size: int = 4, progress: bool = True) -> np.ndarray:
    """Activations ``(n_views, n, C, H, W)`` fp16 of ``trunk(make_view(pixels, rows, view))``,
    read from ``path`` when complete, else computed (resuming a partial file).

    ``images`` is uint8 NHWC; ``make_view(pixels_float_nchw, rows, view)`` returns the view of
    those rows (``rows`` are positions in ``images``, so random draws can be keyed to them)."""
    done_file = path.with_suffix(".done.json")
    n = len(images)
    done = json.loads(done_file.read_text())["images"] if done_file.is_file() and path.is_file() else 0
    if done >= n:
        return np.load(path, mmap_mode="r")
    with torch.inference_mode():
        probe = trunk(torch.zeros(1, 3, images.shape[1], images.shape[2]))
    shape = (n_views, n, *probe.shape[1:])
    if done == 0:
        store = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
    else:
        store = np.load(path, mmap_mode="r+")
    with bar(n_views * n, description, disable=not progress) as advance, torch.inference_mode():
        advance(n_views * done)
        for start in range(done, n, CHUNK):
            rows = np.arange(start, min(start + CHUNK, n))
            for view in range(n_views):
                for first in range(0, len(rows), batch_size):
                    batch_rows = rows[first:first + batch_size]
                    pixels = torch.from_numpy(images[batch_rows]).permute(0, 3, 1, 2).float()
                    store[view, batch_rows] = trunk(make_view(pixels, batch_rows, view)).numpy().astype(np.float16)
                advance(len(rows))
            store.flush()
            atomic_write_text(done_file, json.dumps({"images": int(rows[-1]) + 1, "of": n}))
    del store
    return np.load(path, mmap_mode="r")
