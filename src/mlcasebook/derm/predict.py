"""The product: diagnoses for single images from a trained classifier.

For each image: the top-3 diagnoses with calibrated probabilities (temperature-scaled), the
model's diagnosis call (the top class after the prior shift fitted for balanced accuracy: it
names a rare diagnosis sooner than its probability alone would), the
malignant risk (akiec + bcc + mel) against the model's operating threshold (chosen on held-out
calibration data for a target sensitivity), and optionally a Grad-CAM picture of where the
evidence lies. Given the patient's age, sex or the body site (``clinical.ClinicalContext``), a
model with a clinical model weighs them in and uses that model's own operating point. A file
that cannot be used gets its own error; the batch goes on.

This is a teaching tool, not a medical device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError
from ..core.sources import cache_dir
from .data import CLASS_NAMES, CLASSES, read_image

NOT_A_MEDICAL_DEVICE = ("Not a medical device: a teaching model trained on one public data set. It can be wrong; "
                        "it does not replace a dermatologist. See a doctor about any lesion that worries you.")


def default_model_path() -> Path:
    """Where `mlcasebook derm train` puts the model unless told otherwise."""
    return cache_dir() / "derm" / "derm_classifier.ckpt"


def load_model(path: Path | str | None = None):
    """A trained ``DermClassifier``; a clear error when there is none yet."""
    path = Path(path) if path else default_model_path()
    if not path.is_file():
        raise DataError(f"no trained skin-lesion model at {path}",
                        hint=f"train one first: mlcasebook derm train --out {path} (or pass --model PATH)")
    from .models import load_classifier

    return load_classifier(path)


@dataclass
class Prediction:
    image: str
    top: list[dict[str, Any]] = field(default_factory=list)  # [{"dx", "name", "probability"}]
    call: str | None = None              # the diagnosis call (dx), see OperatingPoint.diagnose
    malignant_risk: float | None = None
    threshold: float | None = None
    flagged: bool | None = None          # risk >= threshold: the model would refer this lesion
    context: dict[str, Any] | None = None  # the age / sex / site weighed in, when given
    gradcam: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != []}


def predict_images(classifier, paths: list[Path | str], top: int = 3, gradcam_dir: Path | None = None,
                   tta: bool = True, context=None) -> list[Prediction]:
    """One ``Prediction`` per path, in order; unreadable files carry ``error`` instead. ``context``
    (a ``clinical.ClinicalContext``, the same for every image) needs a model with a clinical model."""
    point = classifier
    if context is not None and context.given():
        if classifier.clinical is None:
            raise DataError("this model has no clinical model, so it cannot use age, sex or site",
                            hint="leave out --age/--sex/--site, or retrain (`derm train`) or rebuild the ensemble "
                                 "(`derm ensemble`) on data with age, sex and localization columns")
        point = classifier.clinical
    else:
        context = None
    predictions = []
    for path in paths:
        try:
            image = read_image(path, classifier.image_size)
        except DataError as exc:
            predictions.append(Prediction(str(path), error=exc.message))
            continue
        probs = np.asarray(classifier.predict_proba(image[None], tta=tta))[0]
        if context is not None:
            probs = point.fuse(probs[None], context.frame())[0]
        risk = float(np.asarray(point.malignant_risk(probs[None])).reshape(-1)[0])
        order = np.argsort(probs)[::-1][:top]
        prediction = Prediction(
            str(path),
            top=[{"dx": CLASSES[k], "name": CLASS_NAMES[CLASSES[k]], "probability": float(probs[k])} for k in order],
            call=CLASSES[int(point.diagnose(probs[None])[0])],
            malignant_risk=risk, threshold=float(point.threshold), flagged=bool(risk >= point.threshold),
            context=None if context is None else {k: v for k, v in asdict(context).items() if v is not None})
        if gradcam_dir is not None:
            prediction.gradcam = str(save_gradcam(classifier, image, Path(path), Path(gradcam_dir)))
        predictions.append(prediction)
    return predictions


def save_gradcam(classifier, image: np.ndarray, source: Path, folder: Path) -> Path:
    """Grad-CAM of the top class beside the photograph, as ``<folder>/<stem>_gradcam.png``."""
    from PIL import Image

    from .gradcam import explain

    folder.mkdir(parents=True, exist_ok=True)
    cam = explain(classifier, image)
    side = Image.new("RGB", (image.shape[1] * 2, image.shape[0]))
    side.paste(Image.fromarray(image), (0, 0))
    side.paste(cam.overlay, (image.shape[1], 0))
    target = folder / f"{source.stem}_gradcam.png"
    partial = target.with_suffix(".tmp.png")
    side.save(partial)
    partial.replace(target)  # never a half-written picture
    return target
