"""Clinical context — the patient's age and sex, the lesion's body site — weighed with the image.

A dermatologist never sees a dermoscopy image alone: a scaly patch on the face of a 75-year-old
(akiec) and a pigmented spot on the back of a 20-year-old (nv) are different prior cases. HAM10000
records age, sex and site for every image, and ISIC 2019's "with metadata" track used them.

The model here is deliberately separate from the network, so any trained classifier or ensemble
can use it: a multinomial logistic regression ``P(dx | age, sex, site)`` fitted on the train
split, combined with the image's calibrated probabilities by Bayes' rule under the assumption
that image and context are independent given the diagnosis:

    log P(dx | image, context) = log P(dx | image) + w · (log P(dx | context) − log P(dx)) + const

``w`` (1 if the assumption held) is chosen on the calibration split for log-loss; then the fused
scores get their own temperature, malignant threshold and prior shift there, exactly as a model's
own (``train.calibrate``), because the risk scale moves when context is added.

What it buys, measured (docs/derm.md): calibration log-loss 9–19 % lower and malignant AUC
+0.000 to +0.015 for every model; balanced accuracy moved both ways, within the noise. Age, sex and site
alone (5-fold CV on train) give log-loss 0.80 against 1.01 for the class frequencies.

``dx_type`` (how the diagnosis was confirmed) is never used: it leaks the label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataError
from .data import CLASSES, MALIGNANT_MASK
from .evaluate import fit_temperature, softmax
from .models import OperatingPoint, bias_record

CONTEXT_COLUMNS = ("age", "sex", "localization")
SEXES = ("male", "female")
# HAM10000's body sites ("localization"); anything else counts as unknown.
SITES = ("abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand", "lower extremity", "neck",
         "scalp", "trunk", "upper extremity")
AGE_BANDS = ((0, 30), (30, 45), (45, 60), (60, 75), (75, 200))
# Inverse regularisation of the logistic regression: 5-fold grouped CV log-loss on the train split
# was 0.838 / 0.817 / 0.808 / 0.805 / 0.805 / 0.808 for C = 0.03 / 0.1 / 0.3 / 1 / 3 / 10.
C = 1.0
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


@dataclass(frozen=True)
class ClinicalContext:
    """What the user may know about one lesion; every field optional."""

    age: float | None = None
    sex: str | None = None
    site: str | None = None

    def given(self) -> bool:
        return any(value is not None for value in (self.age, self.sex, self.site))

    def frame(self, rows: int = 1) -> pd.DataFrame:
        return pd.DataFrame({"age": [np.nan if self.age is None else float(self.age)] * rows,
                             "sex": [self.sex or "unknown"] * rows, "localization": [self.site or "unknown"] * rows})


def checked_context(age: float | None, sex: str | None, site: str | None) -> ClinicalContext:
    """A ``ClinicalContext`` from user input; one ``DataError`` naming every bad value."""
    problems = []
    if age is not None and not 0 <= age <= 120:
        problems.append(f"age {age:g} is not in 0..120 years")
    sex = sex.strip().lower() if sex else None
    if sex is not None and sex not in SEXES:
        problems.append(f"sex {sex!r} is not one of {', '.join(SEXES)}")
    site = site.strip().lower().replace("_", " ") if site else None
    if site is not None and site not in SITES:
        problems.append(f"body site {site!r} is not one of HAM10000's: {', '.join(SITES)}")
    if problems:
        raise DataError("clinical context: " + "; ".join(problems),
                        hint="leave out what you do not know; the model treats it as unknown")
    return ClinicalContext(age, sex, site)


def has_context(frame: pd.DataFrame) -> bool:
    """True when a data set carries age, sex and site columns with at least one known value."""
    if not all(column in frame.columns for column in CONTEXT_COLUMNS):
        return False
    known = (pd.to_numeric(frame["age"], errors="coerce").notna() | np.isin(_words(frame["sex"]), SEXES)
             | np.isin(_words(frame["localization"]), SITES))
    return bool(known.any())


def _words(column: pd.Series) -> np.ndarray:
    """Values as the vocabularies spell them: lower case, no padding, "lower_extremity" → "lower extremity"."""
    return column.astype(str).str.strip().str.lower().str.replace("_", " ").to_numpy()


def context_features(frame: pd.DataFrame) -> np.ndarray:
    """``(n, 27)`` features: age (scaled, squared, missing flag, five bands), sex and site one-hot;
    missing or unknown values give all-zero one-hots (and the mean age with its flag set)."""
    age = pd.to_numeric(frame["age"], errors="coerce").to_numpy(dtype=np.float64)
    missing = np.isnan(age)
    scaled = np.where(missing, 0.5, age / 100)
    sex, site = _words(frame["sex"]), _words(frame["localization"])
    columns = [scaled, scaled ** 2, missing.astype(float)]
    columns += [((age >= low) & (age < high)).astype(float) for low, high in AGE_BANDS]
    columns += [(sex == value).astype(float) for value in SEXES]
    columns += [(site == value).astype(float) for value in SITES]
    return np.stack(columns, axis=1)


@dataclass
class ClinicalModel(OperatingPoint):
    """``P(dx | context)`` and how it is weighed with the image; its own calibrated operating point."""

    coef: np.ndarray                      # (7, 27)
    intercept: np.ndarray                 # (7,)
    prior: np.ndarray                     # (7,) class frequencies of the train split
    weight: float = 1.0
    temperature: float = 1.0
    threshold: float = 0.5
    target_sensitivity: float | None = None
    class_bias: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.coef = np.asarray(self.coef, dtype=np.float64)
        self.intercept = np.asarray(self.intercept, dtype=np.float64)
        self.prior = np.asarray(self.prior, dtype=np.float64)
        self.set_class_bias(self.class_bias)

    def context_log_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        scores = context_features(frame) @ self.coef.T + self.intercept
        return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)

    def fused_logits(self, probs: np.ndarray, frame: pd.DataFrame, weight: float | None = None) -> np.ndarray:
        """Untempered fused scores of calibrated image probabilities ``probs`` and the context rows."""
        weight = self.weight if weight is None else weight
        ratio = self.context_log_probabilities(frame) - np.log(self.prior)
        return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None)) + weight * ratio

    def fuse(self, probs: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated class probabilities given the image and the context."""
        return softmax(self.fused_logits(probs, frame), self.temperature)

    def record(self) -> dict[str, Any]:
        return {"coef": self.coef.tolist(), "intercept": self.intercept.tolist(), "prior": self.prior.tolist(),
                "weight": self.weight, "temperature": self.temperature, "threshold": self.threshold,
                "target_sensitivity": self.target_sensitivity, "class_bias": bias_record(self.class_bias),
                "info": self.info}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> ClinicalModel | None:
        return None if record is None else cls(**record)


def fit_context_model(frame: pd.DataFrame, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(7, d)`` and intercepts ``(7,)`` of ``P(dx | context)``; a class absent from
    ``labels`` (small subsets) gets an intercept of −30, i.e. never."""
    from sklearn.linear_model import LogisticRegression

    regression = LogisticRegression(C=C, max_iter=5000).fit(context_features(frame), labels)
    coef = np.zeros((len(CLASSES), regression.coef_.shape[1]))
    intercept = np.full(len(CLASSES), -30.0)
    present = regression.classes_.astype(int)
    if len(present) == 2:  # sklearn's binary form: one row, the second class's score against 0
        intercept[present[0]] = 0.0
        coef[present[1]], intercept[present[1]] = regression.coef_[0], regression.intercept_[0]
    else:
        coef[present], intercept[present] = regression.coef_, regression.intercept_
    return coef, intercept


def fit_clinical(train_frame: pd.DataFrame, train_labels: np.ndarray, cal_frame: pd.DataFrame,
                 cal_probs: np.ndarray, cal_labels: np.ndarray, target_sensitivity: float,
                 prior: np.ndarray) -> ClinicalModel | None:
    """The context model for a classifier whose calibrated calibration-split probabilities are
    ``cal_probs``: fitted on the train split's context, weighed and calibrated on the calibration
    split. None when either part has no context to learn from."""
    from .train import calibrate

    if not (has_context(train_frame) and has_context(cal_frame)) or len(np.unique(train_labels)) < 2:
        return None
    coef, intercept = fit_context_model(train_frame, train_labels)
    model = ClinicalModel(coef, intercept, prior)
    cal_labels = np.asarray(cal_labels, dtype=np.int64)

    def nll(weight: float) -> float:  # after the temperature the fused scores will get
        logits = model.fused_logits(cal_probs, cal_frame, weight)
        probs = softmax(logits, fit_temperature(logits, cal_labels))
        return float(-np.log(np.clip(probs[np.arange(len(cal_labels)), cal_labels], 1e-300, None)).mean())

    losses = {weight: nll(weight) for weight in WEIGHTS}
    model.weight = min(losses, key=losses.get)
    fitted = calibrate(model.fused_logits(cal_probs, cal_frame), cal_labels, target_sensitivity, prior)
    model.temperature, model.threshold = fitted["temperature"], fitted["threshold"]
    model.target_sensitivity = target_sensitivity
    model.set_class_bias(fitted["class_bias"])
    model.info = {"fitted_on": "context model: train split; weight, temperature, threshold, prior shift: "
                                "calibration split",
                  "n_train": int(len(train_labels)), "n_calibration": int(len(cal_labels)),
                  "n_malignant_calibration": int(MALIGNANT_MASK[cal_labels].sum()),
                  "calibration_nll_by_weight": {f"{w:g}": loss for w, loss in losses.items()},
                  "calibration": fitted["calibration"]}
    return model
