"""Training: fine-tuned EfficientNet-Lite, a small CNN from scratch, frozen features + logistic regression.

One entry point, ``train_classifier``, for the three families (``mlcasebook derm train`` calls it):

1. Load the images and the fixed split (``data.split_indices``: train / calibration /
   validation). Validation is never read here: it belongs to ``evaluate``.
2. Fit on train:
   - Lite (``efficientnet-lite*``), ``cut`` 0 (default): the whole ImageNet network fine-tuned
     from pixels, every batch augmented afresh in torch (``augment``), AdamW, warm-up + cosine
     learning rate, channels-last tensors (measured 1.4x faster on these CPUs).
   - Lite with ``cut`` > 0: the frozen trunk's activations are cached for ``views`` augmented
     views of every training image (``features.py``); each epoch draws one view per image and
     trains blocks ``cut``.. + head. Cheaper per epoch, but it measured worse (docs/derm.md).
   - ``small-cnn``: trained from scratch, end to end, through the same from-pixels loop.
   - ``frozen-lr``: pooled ImageNet features of a few views → scikit-learn logistic regression
     (C chosen on calibration), folded into the network's last linear layer.
3. Calibrate on the calibration split: temperature scaling (``evaluate.fit_temperature``) of the
   test-time-augmented logits, then the malignant threshold for ``target_sensitivity``
   (``evaluate.choose_threshold``). Save one classifier file (``models.save_classifier``).

Class imbalance (nv is 72 % of images, df 1 %): ``imbalance="sampling"`` draws training
examples with probability ∝ 1/class count (each epoch sees every class equally often, the rare
ones in different cached views); ``"weighted"`` keeps the natural order and weights the loss by
inverse class frequency. Which is better was measured on the calibration split (docs/derm.md).

Resumable: after every epoch the module, the optimizer and the history are written atomically
to ``<out>.resume``; the random draws of epoch e come from generators seeded by (seed, e), and
the learning rate is a function of the step, so rerunning the same command continues exactly
where it stopped (the state file is removed once the model is saved).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checkpoint import load_checkpoint, save_checkpoint
from ..core.errors import CasebookError
from ..core.progress import bar
from ..core.tracking import tracked_run
from .clinical import fit_clinical
from .data import CLASSES, MALIGNANT_MASK, LesionSet, load_dataset, split_indices
from .evaluate import (
    balanced_accuracy,
    choose_threshold,
    expected_calibration_error,
    fit_prior_shift,
    fit_temperature,
    softmax,
)
from .features import cache_path, cached_activations
from .models import (
    ARCHS,
    CACHED_CUT,
    DEFAULT_CUT,
    DEFAULT_IMAGE_SIZE,
    LITE_ARCHS,
    TTA_ELEMENTS,
    DermClassifier,
    build_model,
    dihedral,
    save_classifier,
)

AUG_VERSION = 1
IMBALANCE = ("sampling", "weighted")
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (stored in the model and the resume file)."""

    arch: str = "efficientnet-lite0"
    image_size: int = 224
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.05
    imbalance: str = "sampling"
    views: int = 4  # cached augmented views per training image (Lite and LR)
    cut: int = DEFAULT_CUT
    seed: int = 0
    target_sensitivity: float = 0.95
    max_images: int | None = None
    # Arithmetic of the training forward/backward: "bfloat16" autocasts the convolutions (the
    # weights, optimiser and batch norm stay float32). On this avx512_bf16 CPU a 224 px Lite0
    # step measured 17.6 against 12.2 img/s in float32 (2 threads); at 160 px it was slower
    # (27.6 against 31.8), so float32 stays the default. Inference is always float32.
    precision: str = "float32"


# Per-family defaults, set from measurements on 2 cores (docs/derm.md). End-to-end Lite at
# 160 px: ~30 img/s on 2 threads, 15 epochs of 4,307 images in 36 min (the issue allows 60);
# chosen over 128 px x 20 epochs on the calibration split (equal malignant AUC, balanced
# accuracy 0.70 against 0.67).
DEFAULTS: dict[str, dict[str, Any]] = {
    **{arch: {"image_size": 160, "epochs": 15, "lr": 5e-4, "weight_decay": 1e-2, "views": 0} for arch in LITE_ARCHS},
    "small-cnn": {"image_size": 64, "epochs": 10, "batch_size": 64, "lr": 3e-3, "weight_decay": 5e-4, "views": 0},
    "frozen-lr": {"epochs": 0, "views": 4, "cut": CACHED_CUT},
}
# What a cached fine-tuning run (``cut`` > 0) starts from when no other value is given.
CACHED_DEFAULTS: dict[str, Any] = {"image_size": 224, "epochs": 8, "lr": 1e-3, "weight_decay": 1e-4, "views": 4}


def make_config(arch: str, **overrides: Any) -> TrainConfig:
    if arch not in ARCHS:
        raise CasebookError(f"unknown architecture {arch!r}", hint=f"choose one of: {', '.join(ARCHS)}")
    values = {"arch": arch, "image_size": DEFAULT_IMAGE_SIZE[arch], **DEFAULTS[arch]}
    given = {key: value for key, value in overrides.items() if value is not None}
    if arch in LITE_ARCHS and given.get("cut", DEFAULT_CUT) > 0:
        values.update(CACHED_DEFAULTS)
    values.update(given)
    config = TrainConfig(**values)
    if config.arch in LITE_ARCHS and not 0 <= config.cut < 16:
        raise CasebookError(f"cut must lie in 0..15 (the block where fine-tuning starts), got {config.cut}")
    if config.arch in LITE_ARCHS and config.cut > 0 and config.views < 1:
        raise CasebookError("fine-tuning from cached activations needs at least one view", hint="pass views >= 1")
    if config.imbalance not in IMBALANCE:
        raise CasebookError(f"unknown imbalance handling {config.imbalance!r}", hint=f"one of: {', '.join(IMBALANCE)}")
    if config.precision not in PRECISIONS:
        raise CasebookError(f"unknown precision {config.precision!r}", hint=f"one of: {', '.join(PRECISIONS)}")
    if not 0.0 < config.target_sensitivity <= 1.0:
        raise CasebookError(f"target sensitivity must lie in (0, 1], got {config.target_sensitivity}")
    return config


# ---- augmentation, in torch on 0..255 float NCHW -------------------------------------------

# Ranges of the random part of a view: rotation (degrees; the dihedral element already turns by
# multiples of 90), zoom in, shift (fraction of the half-width), brightness, contrast, saturation.
JITTER_LOW = np.array([-30.0, 1.0, -0.06, -0.06, 0.85, 0.85, 0.85])
JITTER_HIGH = np.array([30.0, 1.25, 0.06, 0.06, 1.15, 1.15, 1.15])


# Dihedral element of each cached view: the first four mix two rotations and two reflections;
# eight views use every element once.
VIEW_ELEMENTS = np.array([0, 1, 6, 7, 3, 2, 5, 4])


def draw_jitter(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(JITTER_LOW, JITTER_HIGH, size=(n, len(JITTER_LOW)))


def augment(pixels: torch.Tensor, elements: np.ndarray, jitter: np.ndarray) -> torch.Tensor:
    """Per-image dihedral element, then rotation + zoom + shift (reflection at the borders: the
    skin around a lesion continues) and brightness / contrast / saturation jitter."""
    out = torch.empty_like(pixels)
    for element in np.unique(elements):
        chosen = torch.from_numpy(np.flatnonzero(elements == element))
        out[chosen] = dihedral(pixels[chosen], int(element))
    params = torch.as_tensor(jitter, dtype=pixels.dtype)
    angle = torch.deg2rad(params[:, 0])
    scale = 1.0 / params[:, 1]
    theta = torch.stack([torch.stack([angle.cos() * scale, -angle.sin() * scale, params[:, 2]], 1),
                         torch.stack([angle.sin() * scale, angle.cos() * scale, params[:, 3]], 1)], 1)
    grid = F.affine_grid(theta, list(out.shape), align_corners=False)
    out = F.grid_sample(out, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    brightness, contrast, saturation = (params[:, k].view(-1, 1, 1, 1) for k in (4, 5, 6))
    out = out * brightness
    grey = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
    out = (out - grey.mean(dim=(2, 3), keepdim=True)) * contrast + grey.mean(dim=(2, 3), keepdim=True)
    grey = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
    out = (out - grey) * saturation + grey
    return out.clamp(0.0, 255.0)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch: resuming at epoch e replays exactly the draws of epoch e."""
    return np.random.default_rng([seed, epoch, 20171])


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Inverse class frequency, normalised so that the mean weight over examples is 1."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (len(CLASSES) * np.maximum(counts, 1)), 0.0)
    return weights


def epoch_order(labels: np.ndarray, imbalance: str, rng: np.random.Generator) -> np.ndarray:
    """Row order of one epoch: a permutation, or (``sampling``) as many draws with replacement,
    each class equally likely."""
    if imbalance == "sampling":
        weights = class_weights(labels)[labels]
        return rng.choice(len(labels), size=len(labels), replace=True, p=weights / weights.sum())
    return rng.permutation(len(labels))


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to zero over the remaining steps."""
    warmup = max(1, int(config.warmup_epochs * steps_per_epoch))
    total = max(warmup + 1, config.epochs * steps_per_epoch)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (total - warmup)))


# ---- resumable state -----------------------------------------------------------------------


def _state_arrays(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    arrays = {f"module.{name}": tensor for name, tensor in module.state_dict().items()}
    state = optimizer.state_dict()
    for param_id, values in state["state"].items():
        for key, value in values.items():
            arrays[f"optimizer.{param_id}.{key}"] = torch.as_tensor(value)
    return arrays, state["param_groups"]


def _restore(module: torch.nn.Module, optimizer: torch.optim.Optimizer, arrays: dict, param_groups: list) -> None:
    module.load_state_dict({name.removeprefix("module."): torch.from_numpy(value)
                            for name, value in arrays.items() if name.startswith("module.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in arrays.items():
        if name.startswith("optimizer."):
            _, param_id, key = name.split(".", 2)
            state.setdefault(int(param_id), {})[key] = torch.from_numpy(np.array(value))
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def resume_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume")


def same_config(stored: dict | None, config: TrainConfig) -> bool:
    """True when a stored config dict is ``config``; a field added since the file was written
    counts at its default (the value the file was trained with)."""
    if stored is None:
        return False
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return {**defaults, **stored} == asdict(config)


def finished_with(out: Path, config: TrainConfig) -> bool:
    """True when ``out`` is a model this very configuration already produced."""
    if not out.is_file() or resume_path(out).is_file():
        return False
    try:
        _, meta = load_checkpoint(out)
    except CasebookError:
        return False
    return same_config(meta.get("info", {}).get("config"), config)


# ---- the loop shared by the two gradient-trained families ----------------------------------


def fit_epochs(module: torch.nn.Module, parameters: list, labels: np.ndarray, config: TrainConfig,
               batch_inputs, forward, calibration_logits, state_file: Path | None, tracker, progress: bool,
               resume: bool = True) -> dict[str, Any]:
    """Train for ``config.epochs`` epochs, checkpointing after each; returns the run record.

    ``batch_inputs(rows, rng)`` gives the input tensor of training rows; ``forward(inputs)`` the
    logits; ``calibration_logits()`` the untempered calibration logits (one view, for the log)."""
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    record: dict[str, Any] = {"history": [], "train_seconds": 0.0, "epochs_done": 0}
    if resume and state_file is not None and state_file.is_file():
        arrays, meta = load_checkpoint(state_file)
        if not same_config(meta.get("config"), config):
            raise CasebookError(f"{state_file} belongs to a run with other settings",
                                hint="rerun with the same options, pass --no-resume, or delete the file")
        _restore(module, optimizer, arrays, meta["param_groups"])
        record = meta["record"]
    weight = torch.as_tensor(class_weights(labels), dtype=torch.float32) if config.imbalance == "weighted" else None
    steps_per_epoch = math.ceil(len(labels) / config.batch_size)
    targets = torch.from_numpy(labels)
    calibration_labels = None
    for epoch in range(record["epochs_done"], config.epochs):
        started = time.perf_counter()
        rng = epoch_rng(config.seed, epoch)
        torch.manual_seed(int(rng.integers(2**31)))  # dropout / drop-connect of this epoch
        order = epoch_order(labels, config.imbalance, rng)
        module.train()
        total_loss = 0.0
        with bar(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", disable=not progress) as advance:
            for step_in_epoch in range(steps_per_epoch):
                rows = order[step_in_epoch * config.batch_size:(step_in_epoch + 1) * config.batch_size]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(config, epoch * steps_per_epoch + step_in_epoch, steps_per_epoch)
                inputs = batch_inputs(rows, rng)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bfloat16"):
                    logits = forward(inputs)
                logits = logits.float()  # the loss in float32
                loss = F.cross_entropy(logits, targets[rows], weight=weight, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(rows)
                advance(1)
        module.eval()
        with torch.inference_mode():
            cal_logits, calibration_labels = calibration_logits()
        cal_probs = softmax(cal_logits)
        elapsed = time.perf_counter() - started
        entry = {"epoch": epoch + 1, "train_loss": total_loss / len(labels),
                 "calibration_nll": float(-np.log(cal_probs[np.arange(len(calibration_labels)), calibration_labels]
                                                  + 1e-12).mean()),
                 "calibration_balanced_accuracy": balanced_accuracy(calibration_labels, cal_probs.argmax(1)),
                 "seconds": elapsed, "images_per_second": len(labels) / elapsed}
        record["history"].append(entry)
        record["train_seconds"] += elapsed
        record["epochs_done"] = epoch + 1
        tracker.metrics({k: v for k, v in entry.items() if k != "epoch"}, step=epoch + 1)
        if state_file is not None:
            arrays, groups = _state_arrays(module, optimizer)
            save_checkpoint(state_file, arrays, {"config": asdict(config), "param_groups": groups, "record": record})
    return record


# ---- calibration: temperature + operating threshold ----------------------------------------


def training_prior(train_labels: np.ndarray) -> np.ndarray:
    """Class frequencies of the training labels (add-one, so a class absent from a small subset
    still has a finite log-prior)."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=len(CLASSES)) + 1.0
    return counts / counts.sum()


def calibrate(logits: np.ndarray, labels: np.ndarray, target_sensitivity: float,
              prior: np.ndarray | None = None) -> dict[str, Any]:
    """Temperature and malignant threshold fitted on calibration logits (never on validation);
    given the training ``prior``, also the prior shift of the diagnosis call (``fit_prior_shift``)."""
    from sklearn.metrics import roc_auc_score

    temperature = fit_temperature(logits, labels)
    probs = softmax(logits, temperature)
    is_malignant = MALIGNANT_MASK[labels]
    risk = probs[:, MALIGNANT_MASK].sum(axis=1)
    both = 0 < is_malignant.sum() < len(labels)
    threshold = choose_threshold(risk, is_malignant, target_sensitivity) if is_malignant.any() else 0.5
    shift = fit_prior_shift(probs, labels, prior) if prior is not None else None
    return {"temperature": temperature, "threshold": threshold,
            "class_bias": shift["class_bias"] if shift else None,
            "calibration": {"n_images": len(labels), "n_malignant": int(is_malignant.sum()),
                            "balanced_accuracy": balanced_accuracy(labels, probs.argmax(1)),
                            **({"prior_shift": shift["prior_shift"],
                                "balanced_accuracy_after_shift": shift["balanced_accuracy"]} if shift else {}),
                            "malignant_auc": float(roc_auc_score(is_malignant, risk)) if both else None,
                            "ece_before": expected_calibration_error(softmax(logits), labels),
                            "ece_after": expected_calibration_error(probs, labels)}}


# ---- the three families --------------------------------------------------------------------


def _trunk_cache(module, images: np.ndarray, ids: list[str], config: TrainConfig, part: str, progress: bool):
    """Cached trunk activations: training images in ``config.views`` jittered views, or the
    calibration images in the four test-time flips."""
    if part == "train":
        n_views = config.views
        elements = np.resize(VIEW_ELEMENTS, n_views)
        jitter = draw_jitter(np.random.default_rng([config.seed, 7]), len(images) * n_views).reshape(
            len(images), n_views, -1)

        def make_view(pixels, rows, view):
            return augment(pixels, np.full(len(rows), elements[view]), jitter[rows, view])
    else:
        n_views = len(TTA_ELEMENTS)

        def make_view(pixels, rows, view):
            return dihedral(pixels, TTA_ELEMENTS[view])
    parts = {"backbone": module.backbone, "image_size": config.image_size, "cut": module.cut, "name": part,
             "views": n_views, "seed": config.seed if part == "train" else None, "aug": AUG_VERSION,
             "ids": ids}
    return cached_activations(cache_path(parts), images, n_views, module.trunk, make_view,
                              f"caching frozen-layer activations ({part}, {n_views} views)", progress=progress)


def _view_tensor(store: np.ndarray, views: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(store[views, rows], dtype=np.float32))


def _tta_logits(run, store: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Mean over the cached test-time views of ``run(activations)``, in batches."""
    n = store.shape[1]
    out = []
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        out.append(torch.stack([run(_view_tensor(store, np.full(len(rows), v), rows))
                                for v in range(store.shape[0])]).mean(0))
    return torch.cat(out).double().numpy()


def _train_lite_cached(config, data, state_file, tracker, progress, resume) -> tuple[torch.nn.Module, np.ndarray, dict]:
    module = build_model(config.arch, image_size=config.image_size, cut=config.cut).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    trainable = module.trainable_parameters()
    for parameter in trainable:
        parameter.requires_grad_(True)
    started = time.perf_counter()
    train_store = _trunk_cache(module, data["train_images"], data["train_ids"], config, "train", progress)
    cal_store = _trunk_cache(module, data["cal_images"], data["cal_ids"], config, "calibration", progress)
    cache_seconds = time.perf_counter() - started

    def batch_inputs(rows, rng):
        return _view_tensor(train_store, rng.integers(0, config.views, size=len(rows)), rows)

    record = fit_epochs(module, trainable, data["train_labels"], config, batch_inputs, module.from_trunk,
                        lambda: (_batched(module.from_trunk, cal_store[0]), data["cal_labels"]),
                        state_file, tracker, progress, resume)
    with torch.inference_mode():
        logits = _tta_logits(module.from_trunk, cal_store)
    record["cache_seconds"] = cache_seconds
    return module, logits, record


def _batched(run, activations: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return torch.cat([run(torch.from_numpy(np.asarray(activations[start:start + batch_size], dtype=np.float32)))
                      for start in range(0, len(activations), batch_size)]).double().numpy()


def _train_from_pixels(config, data, state_file, tracker, progress, resume):
    """End to end from pixels (small CNN; Lite with ``cut`` 0): each batch augmented afresh."""
    torch.manual_seed(config.seed)
    module = build_model(config.arch, image_size=config.image_size, cut=config.cut)
    # Channels-last: measured 34 against 24 img/s for a Lite0 training step at 128 px, 2 threads.
    module = module.to(memory_format=torch.channels_last)
    images = torch.from_numpy(data["train_images"]).permute(0, 3, 1, 2)
    cal_pixels = torch.from_numpy(data["cal_images"]).permute(0, 3, 1, 2).float()

    def batch_inputs(rows, rng):
        pixels = augment(images[rows].float(), rng.integers(0, 8, size=len(rows)), draw_jitter(rng, len(rows)))
        return pixels.contiguous(memory_format=torch.channels_last)

    def cal_logits(elements=(0,)):
        views = [torch.cat([module(dihedral(cal_pixels[start:start + 64], element).contiguous(
            memory_format=torch.channels_last)) for start in range(0, len(cal_pixels), 64)])
            for element in elements]
        return torch.stack(views).mean(0).double().numpy()

    record = fit_epochs(module, module.trainable_parameters(), data["train_labels"], config, batch_inputs, module,
                        lambda: (cal_logits(), data["cal_labels"]), state_file, tracker, progress, resume)
    with torch.inference_mode():
        logits = cal_logits(TTA_ELEMENTS)
    # Saved and served in the default layout (state dicts do not keep the memory format).
    return module.to(memory_format=torch.contiguous_format), logits, record


def _train_frozen_lr(config, data, tracker, progress) -> tuple[torch.nn.Module, np.ndarray, dict]:
    """Logistic regression on pooled ImageNet features; C chosen by calibration balanced accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    module = build_model("frozen-lr", image_size=config.image_size, cut=config.cut).eval()
    started = time.perf_counter()
    train_store = _trunk_cache(module, data["train_images"], data["train_ids"], config, "train", progress)
    cal_store = _trunk_cache(module, data["cal_images"], data["cal_ids"], config, "calibration", progress)
    cache_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with torch.inference_mode():
        # Views of one image are separate rows (augmentation); calibration features are the mean
        # over the test-time flips, which for a linear model equals averaging the logits.
        train_features = np.concatenate([_batched(module.features_from_trunk, train_store[v])
                                         for v in range(config.views)])
        cal_features = np.mean([_batched(module.features_from_trunk, cal_store[v])
                                for v in range(cal_store.shape[0])], axis=0)
    train_labels = np.tile(data["train_labels"], config.views)
    scaler = StandardScaler().fit(train_features)
    scores = {}
    fits = {}
    for c in (0.003, 0.01, 0.03, 0.1):
        fitted = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(
            scaler.transform(train_features), train_labels)
        fits[c] = fitted
        scores[c] = balanced_accuracy(data["cal_labels"], fitted.predict(scaler.transform(cal_features)))
    best = max(scores, key=lambda c: (scores[c], -c))
    # Fold the standardisation into one linear layer over all 7 classes; a class absent from a
    # small training subset gets a bias so low that it is never predicted.
    coef = np.zeros((len(CLASSES), train_features.shape[1]))
    bias = np.full(len(CLASSES), -30.0)
    coef[fits[best].classes_] = fits[best].coef_ / scaler.scale_
    bias[fits[best].classes_] = fits[best].intercept_ - coef[fits[best].classes_] @ scaler.mean_
    with torch.no_grad():
        module.fc.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        module.fc.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    logits = cal_features @ coef.T + bias
    record = {"cache_seconds": cache_seconds, "train_seconds": time.perf_counter() - started, "C": best,
              "calibration_balanced_accuracy_by_C": {str(c): s for c, s in scores.items()}, "history": []}
    tracker.params({"C": best})
    return module, logits, record


# ---- entry point ---------------------------------------------------------------------------


def load_training_data(data_dir, config: TrainConfig, progress: bool) -> tuple[LesionSet, dict[str, Any]]:
    lesion_set = load_dataset(data_dir)
    split = split_indices(lesion_set, seed=0)  # the one fixed split every figure refers to
    train_rows, cal_rows = split["train"], split["calibration"]
    if config.max_images:
        # Quick runs: a seeded subset of train, and a quarter as many calibration images.
        rng = np.random.default_rng(config.seed)
        train_rows = np.sort(rng.permutation(train_rows)[:config.max_images])
        cal_rows = np.sort(rng.permutation(cal_rows)[:max(50, config.max_images // 4)])
    frame = lesion_set.frame
    data = {"train_rows": train_rows, "cal_rows": cal_rows,
            "train_labels": lesion_set.labels[train_rows], "cal_labels": lesion_set.labels[cal_rows],
            "train_ids": frame["image_id"].iloc[train_rows].tolist(),
            "cal_ids": frame["image_id"].iloc[cal_rows].tolist(),
            "train_images": lesion_set.read_images(config.image_size, train_rows, progress=progress),
            "cal_images": lesion_set.read_images(config.image_size, cal_rows, progress=progress)}
    if len(np.unique(data["train_labels"])) < 2:
        raise CasebookError("the training part holds a single diagnosis", hint="use more images (--max-images)")
    return lesion_set, data


def train_classifier(data_dir: Path | str | None = None, arch: str = "efficientnet-lite0",
                     out: Path | str = Path("derm-model.pt"), epochs: int | None = None,
                     image_size: int | None = None, batch_size: int | None = None, seed: int = 0,
                     resume: bool = True, max_images: int | None = None, track: bool = True, progress: bool = True,
                     imbalance: str | None = None, target_sensitivity: float | None = None,
                     views: int | None = None, lr: float | None = None, threads: int | None = None,
                     cut: int | None = None, precision: str | None = None) -> Path:
    """Train ``arch`` on the train split, calibrate on the calibration split, save to ``out``.

    Returns ``out``. Rerunning the same command after an interruption resumes from the last
    finished epoch (and from the cached activations); ``resume=False`` starts over."""
    config = make_config(arch, epochs=epochs, image_size=image_size, batch_size=batch_size, seed=seed,
                         max_images=max_images, imbalance=imbalance, target_sensitivity=target_sensitivity,
                         views=views, lr=lr, cut=cut, precision=precision)
    out = Path(out)
    if threads:
        torch.set_num_threads(threads)
    state_file = resume_path(out)
    if not resume:
        state_file.unlink(missing_ok=True)
    elif finished_with(out, config):
        return out  # the same command already ran to the end: nothing to resume
    started = time.perf_counter()
    lesion_set, data = load_training_data(data_dir, config, progress)
    with tracked_run("derm", f"train-{config.arch}", enabled=track) as tracker:
        tracker.params({**asdict(config), "n_train": len(data["train_rows"]), "n_calibration": len(data["cal_rows"]),
                        "dataset": lesion_set.name, "threads": torch.get_num_threads()})
        if config.arch in LITE_ARCHS and config.cut > 0:
            module, cal_logits, record = _train_lite_cached(config, data, state_file, tracker, progress, resume)
        elif config.arch != "frozen-lr":
            module, cal_logits, record = _train_from_pixels(config, data, state_file, tracker, progress, resume)
        else:
            module, cal_logits, record = _train_frozen_lr(config, data, tracker, progress)
        fitted = calibrate(cal_logits, data["cal_labels"], config.target_sensitivity,
                           training_prior(data["train_labels"]))
        record.update(fitted["calibration"])
        info = {"config": asdict(config), "cut": config.cut, "dataset": lesion_set.name,
                "source": str(lesion_set.source) if lesion_set.source else None,
                "split": "derm.data.split_indices seed 0",
                "n_train": len(data["train_rows"]), "n_calibration": len(data["cal_rows"]),
                "threads": torch.get_num_threads(), "wall_seconds": time.perf_counter() - started,
                "temperature_fitted_on": "calibration", "threshold_fitted_on": "calibration", **record}
        classifier = DermClassifier(module.eval(), config.arch, config.image_size, fitted["temperature"],
                                    fitted["threshold"], config.target_sensitivity, CLASSES, info,
                                    class_bias=fitted["class_bias"])
        classifier.clinical = fit_clinical(
            lesion_set.frame.iloc[data["train_rows"]], data["train_labels"], lesion_set.frame.iloc[data["cal_rows"]],
            softmax(cal_logits, fitted["temperature"]), data["cal_labels"], config.target_sensitivity,
            training_prior(data["train_labels"]))
        save_classifier(out, classifier)
        tracker.metrics({"temperature": fitted["temperature"], "threshold": fitted["threshold"],
                         **{f"calibration_{k}": v for k, v in fitted["calibration"].items()}})
        tracker.artifact(out)
    state_file.unlink(missing_ok=True)
    return out

