"""Several trained classifiers served as one: the product form of the benchmark's ensemble row.

The ensemble's logits are the mean of its members' tempered log-probabilities (each member's
own temperature first, so a sharp member does not outvote the others). Averaging loses
calibration — the members agree where they are right and split where they are wrong, which
makes the mean under-confident — so the ensemble gets its own temperature and its own malignant
operating threshold, fitted on the calibration split exactly as one model's are
(``train.calibrate``). Chosen on the calibration split over the plain mean of probabilities
(Lite0 + frozen-LR + small CNN, 479 images, 75 malignant): a little less ranking (malignant AUC
0.939 against 0.947) for much better calibration (NLL 0.439 against 0.508, ECE 0.027 against 0.110).

An ensemble file is one ``core.checkpoint``: every member's state dict under ``member<i>.``,
their metadata, and the ensemble's temperature and threshold. ``models.load_classifier`` reads
it, so ``derm evaluate`` and ``derm predict`` take either kind of file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.checkpoint import save_checkpoint
from ..core.errors import CasebookError, DataError
from .data import MALIGNANT_MASK
from .models import DermClassifier, OperatingPoint, bias_record, classifier_from_record, classifier_record

ENSEMBLE_FORMAT = "mlcasebook-derm-ensemble"
ENSEMBLE_VERSION = 1


class DermEnsemble(OperatingPoint):
    """The same interface as ``DermClassifier``: calibrated probabilities, malignant risk, a
    threshold; images are read at the largest member's size and each member resizes them."""

    arch = "ensemble"

    def __init__(self, members: list[DermClassifier], temperature: float = 1.0, threshold: float = 0.5,
                 target_sensitivity: float | None = None, info: dict[str, Any] | None = None,
                 class_bias: np.ndarray | list[float] | None = None):
        if len(members) < 2:
            raise CasebookError("an ensemble needs at least two models", hint="pass two or more model files")
        classes = {member.classes for member in members}
        if len(classes) != 1:
            raise CasebookError("the models were trained on different class lists",
                                hint="ensemble models trained on the same data set")
        self.members = list(members)
        self.classes = members[0].classes
        self.image_size = max(member.image_size for member in members)
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.target_sensitivity = target_sensitivity
        self.info = dict(info or {})
        self.set_class_bias(class_bias)

    @property
    def explained(self) -> DermClassifier:
        return self.members[0]

    def logits(self, images: np.ndarray | torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Untempered ensemble logits: the mean of the members' tempered log-probabilities."""
        return mean_log_probabilities([member.logits(images, tta=tta) for member in self.members],
                                      [member.temperature for member in self.members])

    def predict_proba(self, images: np.ndarray | torch.Tensor, tta: bool = True) -> np.ndarray:
        with torch.inference_mode():
            logits = self.logits(images, tta=tta)
        return torch.softmax(logits / self.temperature, dim=1).numpy()


def mean_log_probabilities(member_logits: list, temperatures: list[float]) -> torch.Tensor:
    """The ensemble's logits from its members' raw logits (tensors or arrays), in float64."""
    return torch.stack([torch.log_softmax(torch.as_tensor(z).double() / t, dim=1)
                        for z, t in zip(member_logits, temperatures, strict=True)]).mean(0)


def calibrate_ensemble(members: list[DermClassifier], calibration_logits: np.ndarray, labels: np.ndarray,
                       target_sensitivity: float, sources: list[str] | None = None,
                       prior: np.ndarray | None = None) -> DermEnsemble:
    """The ensemble with its temperature, threshold and (given the training ``prior``) prior
    shift fitted on calibration-split ensemble logits."""
    from .train import calibrate

    fitted = calibrate(calibration_logits, labels, target_sensitivity, prior)
    # "source": the data the members learnt from, so `derm evaluate` warns when asked to score it
    info = {"members": [member.arch for member in members], "sources": sources or [],
            "source": members[0].info.get("source"),
            "calibration": fitted["calibration"],
            "train_seconds": sum(member.info.get("cache_seconds", 0.0) + member.info.get("train_seconds", 0.0)
                                 for member in members)}
    return DermEnsemble(members, fitted["temperature"], fitted["threshold"], target_sensitivity, info,
                        fitted.get("class_bias"))


def build_ensemble(model_paths: list[Path], data_dir: Path | None = None, target_sensitivity: float | None = None,
                   progress: bool = True) -> DermEnsemble:
    """Load trained models and calibrate them as one on the fixed seed-0 calibration split (the
    split every `derm train` model was calibrated on, so no member has seen those images)."""
    from ..core.progress import bar
    from .clinical import fit_clinical
    from .data import load_dataset, split_indices
    from .evaluate import softmax
    from .models import load_classifier
    from .train import TrainConfig, training_prior

    if len(model_paths) < 2:
        raise DataError("an ensemble needs at least two models", hint="pass two or more model files")
    missing = [str(path) for path in model_paths if not Path(path).is_file()]
    if missing:
        raise DataError(f"no model file at: {', '.join(missing)}", hint="train them with `mlcasebook derm train`")
    members = [load_classifier(path) for path in model_paths]
    nested = [str(path) for path, member in zip(model_paths, members, strict=True) if isinstance(member, DermEnsemble)]
    if nested:
        raise DataError(f"already ensembles: {', '.join(nested)}", hint="pass the single models it was built from")
    lesions = load_dataset(data_dir)
    split = split_indices(lesions, seed=0)
    rows = split["calibration"]
    labels = lesions.labels[rows]
    if not MALIGNANT_MASK[labels].any() or MALIGNANT_MASK[labels].all():
        raise DataError(f"the calibration split of {lesions.source} has {len(rows)} images, not both malignant and "
                        "benign ones: nothing to fit the ensemble's threshold on",
                        hint="pass the data the models were trained on (--data-dir)")
    logits = []
    with bar(len(members) * len(rows), "ensemble: calibration logits", disable=not progress) as advance:
        for member in members:
            chunks = []
            for start in range(0, len(rows), 32):
                images = lesions.read_images(member.image_size, rows[start:start + 32], progress=False)
                with torch.inference_mode():
                    chunks.append(member.logits(images, tta=True).double().numpy())
                advance(len(chunks[-1]))
            logits.append(np.concatenate(chunks))
    target = target_sensitivity or members[0].target_sensitivity or TrainConfig.target_sensitivity
    combined = mean_log_probabilities(logits, [m.temperature for m in members]).numpy()
    prior = training_prior(lesions.labels[split["train"]])
    built = calibrate_ensemble(members, combined, labels, target, sources=[str(path) for path in model_paths],
                               prior=prior)
    built.clinical = fit_clinical(lesions.frame.iloc[split["train"]], lesions.labels[split["train"]],
                                  lesions.frame.iloc[rows], softmax(combined, built.temperature), labels, target, prior)
    return built


def save_ensemble(path: Path | str, ensemble: DermEnsemble) -> Path:
    arrays, metas = {}, []
    for i, member in enumerate(ensemble.members):
        member_arrays, meta = classifier_record(member, prefix=f"member{i}.")
        arrays.update(member_arrays)
        metas.append(meta)
    meta = {"format": ENSEMBLE_FORMAT, "version": ENSEMBLE_VERSION, "members": metas,
            "temperature": ensemble.temperature, "threshold": ensemble.threshold,
            "target_sensitivity": ensemble.target_sensitivity, "info": ensemble.info,
            "class_bias": bias_record(ensemble.class_bias),
            "clinical": ensemble.clinical.record() if ensemble.clinical is not None else None,
            "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    return save_checkpoint(path, arrays, meta)


def ensemble_from_record(arrays: dict[str, np.ndarray], meta: dict[str, Any], where: str) -> DermEnsemble:
    if meta.get("version", 0) > ENSEMBLE_VERSION:
        raise CasebookError(f"{where} was written by a newer mlcasebook (ensemble format {meta['version']})",
                            hint="upgrade mlcasebook")
    members = [classifier_from_record(arrays, member, where, prefix=f"member{i}.")
               for i, member in enumerate(meta["members"])]
    from .clinical import ClinicalModel

    ensemble = DermEnsemble(members, meta["temperature"], meta["threshold"], meta.get("target_sensitivity"),
                            meta.get("info"), meta.get("class_bias"))
    ensemble.clinical = ClinicalModel.from_record(meta.get("clinical"))
    return ensemble
