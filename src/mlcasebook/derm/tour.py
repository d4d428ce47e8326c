"""The skin-lesion case's quick mode for `mlcasebook tour`: frozen ImageNet features + a linear head.

The chapter's recipe at its cheapest: EfficientNet-Lite0 with its ImageNet weights, frozen, turns
each dermoscopy image into 1,280 pooled features; a class-balanced logistic regression on a few
hundred training images is the classifier. Its temperature and its malignant operating threshold
(for sensitivity ≥ 0.90) are fitted on calibration images, and it is measured on held-out
validation images — all three drawn from the case's grouped, stratified split (seed 0), at most
a fixed number per class so the rare classes are seen at all. The full model (fine-tuned Lite0,
augmentation, TTA) is `mlcasebook derm train`; its figures are in docs/RESULTS.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..core.cases import CaseOutcome, CaseSkipped, CaseSpec
from ..core.errors import DataError
from ..core.report import Report
from . import evaluate as ev
from .data import CLASSES, LesionSet, load_dataset, split_indices

TARGET_SENSITIVITY = 0.90
# images per class drawn from each part of the split (quick, smoke)
PER_CLASS = {"train": (50, 4), "calibration": (15, 2), "validation": (35, 2)}
SEED = 0


def per_class_sample(labels: np.ndarray, rows: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``cap`` random rows of each class among ``rows`` (sorted)."""
    chosen = [rng.permutation(rows[labels[rows] == k])[:cap] for k in range(len(CLASSES))]
    return np.sort(np.concatenate(chosen))


def frozen_features(lesions: LesionSet, rows: np.ndarray, module, batch_size: int = 1) -> np.ndarray:
    """Pooled ImageNet features ``(n, 1280)`` of the frozen Lite0 trunk. One image at a time:
    on CPU that is the fastest (measured 80 ms/image at batch 1, 110 at 4, 180 at 16, 1 thread
    on a loaded box), as large early activations fall out of cache."""
    import torch

    from ..core.progress import bar
    from .models import to_pixels

    out = []
    threads = torch.get_num_threads()
    # One thread per single-image forward: two threads on one small image spend more time
    # synchronising than computing (measured for the 632 quick-mode images: 121 CPU-s and 94 s
    # wall with 2 threads, 28 CPU-s with 1).
    torch.set_num_threads(1)
    try:
        with bar(len(rows), f"features of {len(rows)} images") as advance, torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                batch = rows[start:start + batch_size]
                pixels = to_pixels(lesions.read_images(224, batch, progress=False), 224)
                out.append(module.features(pixels).numpy())
                advance(len(batch))
    finally:
        torch.set_num_threads(threads)
    return np.concatenate(out)


def run_quick(out_dir: Path, smoke: bool = False) -> CaseOutcome:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .models import build_model

    try:
        lesions = load_dataset(check_images=False)  # the header check costs seconds; read errors still surface
    except DataError as exc:
        raise CaseSkipped(f"HAM10000 images not found ({exc.message})") from exc
    started = time.perf_counter()
    splits = split_indices(lesions, seed=SEED)
    rng = np.random.default_rng(SEED)
    rows = {part: per_class_sample(lesions.labels, splits[part], caps[1 if smoke else 0], rng)
            for part, caps in PER_CLASS.items()}
    module = build_model("frozen-lr", pretrained=True).eval()
    features = {part: frozen_features(lesions, part_rows, module) for part, part_rows in rows.items()}
    labels = {part: lesions.labels[part_rows] for part, part_rows in rows.items()}
    # 1,280 features for a few hundred images: the L2 strength matters, so it is chosen by
    # balanced accuracy in 4-fold CV on the training images (never on calibration or validation)
    folds = 2 if smoke else 4
    head = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=[3e-4, 1e-3, 3e-3, 1e-2, 3e-2], cv=folds, scoring="balanced_accuracy", class_weight="balanced",
        l1_ratios=(0.0,), use_legacy_attributes=False, max_iter=3000))
    head.fit(features["train"], labels["train"])

    def logits(part: str) -> np.ndarray:
        # classes absent from a smoke-sized training set get no column: give them -inf-like logits
        scores = np.full((len(rows[part]), len(CLASSES)), -30.0)
        scores[:, head.classes_] = head.decision_function(features[part])
        return scores

    temperature = ev.fit_temperature(logits("calibration"), labels["calibration"])
    calibration_probs = ev.softmax(logits("calibration"), temperature)
    is_malignant = ev.MALIGNANT_MASK[labels["calibration"]]
    threshold = (ev.choose_threshold(ev.malignant_risk(calibration_probs), is_malignant, TARGET_SENSITIVITY)
                 if is_malignant.any() else 0.5)
    result = ev.evaluate_probabilities(ev.softmax(logits("validation"), temperature), labels["validation"],
                                       threshold, TARGET_SENSITIVITY, n_boot=1000, seed=SEED)
    seconds = time.perf_counter() - started

    report = Report(SPEC.title, case="derm")
    sizes = {part: len(part_rows) for part, part_rows in rows.items()}
    report.text(f"Quick mode: frozen EfficientNet-Lite0 ImageNet features + logistic regression (L2 strength "
                f"C = {float(head[-1].C_):g} by {folds}-fold CV on the training images), trained on "
                f"{sizes['train']} images, temperature ({temperature:.2f}) and malignant threshold "
                f"({threshold:.3f}, for sensitivity ≥ {TARGET_SENSITIVITY:.2f}) fitted on {sizes['calibration']} "
                f"calibration images, measured on {sizes['validation']} held-out validation images. All drawn "
                f"from the grouped, stratified split of {lesions.source} (seed {SEED}), at most "
                f"{PER_CLASS['validation'][1 if smoke else 0]} validation images per class. The class mix is therefore "
                f"flatter than the clinic's: balanced accuracy does not depend on it, but nv (the commonest and "
                f"easiest benign class) is capped, which lowers specificity and accuracy against the natural mix. "
                f"Ran in {seconds:.0f} s on this machine. The full model is `mlcasebook derm train`.", note=True)
    if smoke:
        report.text("Smoke run: a handful of images per class; the numbers mean nothing.", note=True)
    ev.add_to_report(report, result, "the validation sample")
    page = "derm.html"
    report.write(Path(out_dir) / page)
    malignant = result["malignant"]
    return CaseOutcome(
        page=page,
        headline={"balanced acc": f"{result['balanced_accuracy']:.3f}",
                  "malignant AUC": "—" if malignant["auc"] is None else f"{malignant['auc']:.3f}",
                  "sens/spec": f"{malignant['sensitivity']:.2f}/{malignant['specificity']:.2f}"},
        numbers={"images": sizes, "C": float(head[-1].C_), "temperature": temperature, "threshold": threshold,
                 "balanced_accuracy": result["balanced_accuracy"], "macro_auc": result["macro_auc"],
                 "malignant_auc": malignant["auc"], "sensitivity": malignant["sensitivity"],
                 "specificity": malignant["specificity"], "ci95": malignant["ci95"],
                 "ece": result["calibration"]["ece"], "seconds": seconds})


SPEC = CaseSpec(name="derm", title="Case 5 — dermatologist-level skin-lesion classification (HAM10000)",
                quick_budget_s=90, run_quick=run_quick)
