"""Measuring a lesion classifier the way a clinician would.

Seven-class: balanced multiclass accuracy (the ISIC 2018 Task 3 metric: the mean of the
per-class recalls), per-class recall, confusion matrix, macro one-vs-rest AUC.

Malignant vs benign: the risk of an image is the sum of its malignant classes' probabilities
(akiec + bcc + mel). ROC curve and AUC; an operating threshold chosen on the *calibration* split
for a target sensitivity (``choose_threshold``), then sensitivity and specificity on the
validation split at that threshold with 95 % bootstrap intervals, beside the chapter's CNN
(0.95 / 0.88) and dermatologist (0.89 / 0.83) rows.

Calibration: temperature scaling (``fit_temperature``, LBFGS on the NLL of held-out logits),
expected calibration error over 15 equal-width confidence bins and a reliability diagram.

Everything returned is JSON-ready (floats, lists, dicts).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.claims import claims_for
from .data import CLASSES, MALIGNANT_MASK

ECE_BINS = 15


# ---- seven classes -------------------------------------------------------------------------


def confusion(labels: np.ndarray, predicted: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Counts with true classes in rows and predicted classes in columns."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def per_class_recall(labels: np.ndarray, predicted: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Recall of each class; NaN for a class with no true example."""
    matrix = confusion(labels, predicted, n_classes)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray, n_classes: int = len(CLASSES)) -> float:
    """Mean recall over the classes present (ISIC 2018 Task 3's "balanced multiclass accuracy")."""
    return float(np.nanmean(per_class_recall(labels, predicted, n_classes)))


def decide(probs: np.ndarray, class_bias: np.ndarray | None = None) -> np.ndarray:
    """The diagnosis call of each row: argmax of log-probability + ``class_bias`` (none: the top class)."""
    probs = np.asarray(probs, dtype=np.float64)
    if class_bias is None:
        return probs.argmax(axis=1)
    return (np.log(np.clip(probs, 1e-300, None)) + np.asarray(class_bias, dtype=np.float64)).argmax(axis=1)


# Strengths tried for the prior shift: 0 keeps the top class; 1 divides by the training prior.
PRIOR_SHIFTS = np.round(np.arange(0.0, 1.501, 0.05), 2)


def fit_prior_shift(probs: np.ndarray, labels: np.ndarray, prior: np.ndarray,
                    shifts: np.ndarray = PRIOR_SHIFTS) -> dict[str, Any]:
    """The class bias ``-s * log(prior)`` whose call (``decide``) has the best balanced accuracy
    on held-out (calibration) data, over the strengths ``shifts``.

    Why: calibrated probabilities follow the data's class mix, so their top class favours nv
    (72 % of the images); balanced accuracy weighs every diagnosis equally, and its best call
    divides the probabilities by the prior (Menon et al. 2021, "logit adjustment"). Networks
    trained on class-balanced batches overfit the few rare images they see again and again, so
    the right strength is an empirical question. One number, not seven biases, because the
    calibration split holds only 5 df and 6 vasc images; among strengths that tie, the middle one."""
    log_prior = np.log(np.asarray(prior, dtype=np.float64))
    scores = np.array([balanced_accuracy(labels, decide(probs, -s * log_prior)) for s in shifts])
    ties = [float(s) for s, score in zip(shifts, scores, strict=True) if score >= scores.max() - 1e-12]
    strength = ties[len(ties) // 2]
    return {"prior_shift": strength, "class_bias": (-strength * log_prior).tolist(),
            "balanced_accuracy": float(scores.max()),
            "balanced_accuracy_by_shift": {f"{s:g}": float(v) for s, v in zip(shifts, scores, strict=True)}}


def macro_auc(probs: np.ndarray, labels: np.ndarray) -> tuple[float, list[float | None]]:
    """Mean one-vs-rest ROC AUC over the classes that have positives and negatives, and each
    class's AUC (None where undefined)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    per_class: list[float | None] = []
    for k in range(probs.shape[1]):
        positive = labels == k
        per_class.append(float(roc_auc_score(positive, probs[:, k])) if 0 < positive.sum() < len(labels) else None)
    defined = [a for a in per_class if a is not None]
    return (float(np.mean(defined)) if defined else math.nan), per_class


# ---- malignant vs benign -------------------------------------------------------------------


def malignant_risk(probs: np.ndarray) -> np.ndarray:
    """P(malignant) = sum of the malignant classes' probabilities (akiec, bcc, mel)."""
    return np.asarray(probs)[:, MALIGNANT_MASK].sum(axis=1)


def roc(scores: np.ndarray, is_malignant: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(is_malignant, scores)
    return {"auc": float(roc_auc_score(is_malignant, scores)), "fpr": fpr.tolist(), "tpr": tpr.tolist()}


def choose_threshold(scores: np.ndarray, is_malignant: np.ndarray, target_sensitivity: float) -> float:
    """The highest threshold whose sensitivity (``score >= threshold`` counts as malignant) is at
    least ``target_sensitivity`` on these data: the k-th highest malignant score with
    k = ceil(target * positives). Highest, so specificity is as good as the target allows."""
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target sensitivity must lie in (0, 1], got {target_sensitivity}")
    positive_scores = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(is_malignant, dtype=bool)])[::-1]
    if len(positive_scores) == 0:
        raise ValueError("no malignant example: a sensitivity cannot be targeted")
    needed = math.ceil(target_sensitivity * len(positive_scores) - 1e-9)
    return float(positive_scores[max(needed, 1) - 1])


def sensitivity_specificity(scores: np.ndarray, is_malignant: np.ndarray, threshold: float) -> tuple[float, float]:
    flagged = np.asarray(scores) >= threshold
    positive = np.asarray(is_malignant, dtype=bool)
    sensitivity = flagged[positive].mean() if positive.any() else math.nan
    specificity = (~flagged[~positive]).mean() if (~positive).any() else math.nan
    return float(sensitivity), float(specificity)


def bootstrap_sensitivity_specificity(scores: np.ndarray, is_malignant: np.ndarray, threshold: float,
                                      n_boot: int = 2000, seed: int = 0, level: float = 0.95
                                      ) -> dict[str, list[float]]:
    """Percentile bootstrap intervals, resampling images with replacement (all resamples at once)."""
    flagged = np.asarray(scores) >= threshold
    positive = np.asarray(is_malignant, dtype=bool)
    rows = np.random.default_rng(seed).integers(0, len(flagged), size=(n_boot, len(flagged)))
    hit, pos = flagged[rows], positive[rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = (hit & pos).sum(axis=1) / pos.sum(axis=1)
        specificity = (~hit & ~pos).sum(axis=1) / (~pos).sum(axis=1)
    tail = (1.0 - level) / 2 * 100
    return {name: np.nanpercentile(values, [tail, 100 - tail]).tolist()
            for name, values in (("sensitivity", sensitivity), ("specificity", specificity))}


# ---- calibration ---------------------------------------------------------------------------


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 100) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) (Guo et al. 2017), by LBFGS
    on log T so T stays positive. Fit on held-out (calibration) logits, never on training ones."""
    import torch

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def calibration_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, Any]:
    """Top-class confidence vs accuracy in ``n_bins`` equal-width bins (lo, hi], and the ECE:
    the bin-size-weighted mean gap |accuracy - confidence|."""
    confidence = np.asarray(probs).max(axis=1)
    correct = np.asarray(probs).argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins) / count
    gap = np.where(count > 0, np.abs(accuracy - mean_confidence), 0.0)
    ece = float((gap * count).sum() / max(1, count.sum()))
    nan_to_none = lambda values: [None if math.isnan(v) else float(v) for v in values]  # noqa: E731
    return {"ece": ece, "edges": edges.tolist(), "count": count.tolist(),
            "confidence": nan_to_none(mean_confidence), "accuracy": nan_to_none(accuracy)}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    return calibration_bins(probs, labels, n_bins)["ece"]


# ---- everything at once --------------------------------------------------------------------


def evaluate_probabilities(probs: np.ndarray, labels: np.ndarray, threshold: float,
                           target_sensitivity: float | None = None, n_boot: int = 2000, seed: int = 0,
                           class_bias: np.ndarray | None = None) -> dict[str, Any]:
    """All metrics of calibrated probabilities ``(n, 7)`` against true ``labels``, with the
    malignant operating point at ``threshold`` and the diagnosis call shifted by ``class_bias``
    (both chosen elsewhere, on calibration data). Recall, balanced accuracy and the confusion
    matrix are of that call; ``balanced_accuracy_top_class`` is the plain top class's."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = decide(probs, class_bias)
    is_malignant = MALIGNANT_MASK[labels]
    risk = malignant_risk(probs)
    auc_macro, auc_per_class = macro_auc(probs, labels)
    recall = per_class_recall(labels, predicted)
    sensitivity, specificity = sensitivity_specificity(risk, is_malignant, threshold)
    defined = 0 < is_malignant.sum() < len(is_malignant)
    curve = roc(risk, is_malignant) if defined else None
    return {
        "n_images": len(labels),
        "classes": list(CLASSES),
        "class_counts": np.bincount(labels, minlength=len(CLASSES)).tolist(),
        "accuracy": float((predicted == labels).mean()),
        "balanced_accuracy": balanced_accuracy(labels, predicted),
        "balanced_accuracy_top_class": balanced_accuracy(labels, probs.argmax(axis=1)),
        "class_bias": None if class_bias is None else [float(b) for b in class_bias],
        "per_class_recall": {c: (None if math.isnan(r) else float(r)) for c, r in zip(CLASSES, recall, strict=True)},
        "per_class_auc": dict(zip(CLASSES, auc_per_class, strict=True)),
        "macro_auc": auc_macro,
        "confusion": confusion(labels, predicted).tolist(),
        "malignant": {
            "n_malignant": int(is_malignant.sum()),
            "roc": curve,
            "auc": curve["auc"] if curve else None,
            "threshold": float(threshold),
            "target_sensitivity": target_sensitivity,
            "sensitivity": sensitivity,
            "specificity": specificity,
            "ci95": bootstrap_sensitivity_specificity(risk, is_malignant, threshold, n_boot, seed) if defined else None,
            "bootstrap": {"resamples": n_boot, "seed": seed},
        },
        "calibration": calibration_bins(probs, labels),
    }


def chapter_points() -> dict[str, tuple[float, float]]:
    """The chapter's (sensitivity, specificity) rows, as fractions, from core/claims.csv."""
    claims = claims_for("derm")
    return {who: (claims[f"{key}_sensitivity"].value / 100, claims[f"{key}_specificity"].value / 100)
            for who, key in (("CNN (Esteva et al. 2017)", "cnn"), ("dermatologists", "dermatologist"))}


def claims_ours(result: dict[str, Any], where: str) -> dict[str, tuple[Any, str]]:
    """Our figures for ``Report.claims_table``: each chapter row beside our measurement."""
    malignant = result["malignant"]
    ci = malignant.get("ci95") or {}
    target = malignant.get("target_sensitivity")
    point = (f"malignant (akiec+bcc+mel) vs benign on {where}, threshold chosen on the calibration split"
             + (f" for sensitivity ≥ {target:g}" if target else ""))

    def pct(value: float, interval: list[float] | None) -> str:
        text = f"{100 * value:.1f} %"
        return text + (f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]" if interval else "")

    sens = pct(malignant["sensitivity"], ci.get("sensitivity"))
    spec = pct(malignant["specificity"], ci.get("specificity"))
    accuracy = (f"{100 * result['balanced_accuracy']:.1f} %",
                f"7-class balanced accuracy on {where} (the chapter's accuracy is on its own, different task)")
    return {"cnn_accuracy": accuracy, "dermatologist_accuracy": accuracy,
            "cnn_sensitivity": (sens, point), "dermatologist_sensitivity": (sens, point),
            "cnn_specificity": (spec, point), "dermatologist_specificity": (spec, point)}


# ---- figures -------------------------------------------------------------------------------


def roc_figure(result: dict[str, Any], title: str = "Malignant vs benign"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    malignant = result["malignant"]
    fig, ax = plt.subplots(figsize=(5.2, 5))
    if malignant.get("roc"):
        ax.plot(malignant["roc"]["fpr"], malignant["roc"]["tpr"], color="#c00",
                label=f"ours (AUC {malignant['roc']['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8, ls="--")
    ax.scatter([1 - malignant["specificity"]], [malignant["sensitivity"]], color="#c00", zorder=3, marker="o",
               label=f"our operating point ({malignant['sensitivity']:.2f} / {malignant['specificity']:.2f})")
    for (who, (sens, spec)), marker in zip(chapter_points().items(), ("s", "^"), strict=True):
        ax.scatter([1 - spec], [sens], marker=marker, s=60, zorder=3, label=f"{who} ({sens:.2f} / {spec:.2f})")
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return fig


def confusion_figure(result: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(result["confusion"], dtype=np.float64)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.6, 5))
    ax.imshow(rows, cmap="Reds", vmin=0, vmax=1)
    for i, j in np.ndindex(matrix.shape):
        ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=8,
                color="white" if rows[i, j] > 0.6 else "black")
    ticks = range(len(CLASSES))
    ax.set_xticks(ticks, CLASSES)
    ax.set_yticks(ticks, CLASSES)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (colour: row-normalised recall)")
    return fig


def reliability_figure(result: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = result["calibration"]
    edges = np.asarray(bins["edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    accuracy = np.array([np.nan if a is None else a for a in bins["accuracy"]])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.bar(centres, np.nan_to_num(accuracy), width=edges[1] - edges[0], edgecolor="#600", color="#e88",
           label="accuracy in bin")
    ax.plot([0, 1], [0, 1], color="#555", ls="--", lw=0.8, label="perfect calibration")
    ax.set(xlabel="top-class confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability ({len(centres)} bins), ECE {bins['ece']:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def add_to_report(report, result: dict[str, Any], where: str) -> None:
    """The standard sections of an evaluation: headline table, claims, figures; and, when the
    clinical context was measured too, its headline table and ROC."""
    import pandas as pd

    malignant = result["malignant"]
    report.heading(f"Results on {where} ({result['n_images']} images, {malignant['n_malignant']} malignant)")
    report.table(headline_table(result), digits=3)
    report.claims_table(claims_ours(result, where))
    recall = pd.DataFrame([{"class": c, "images": n, "recall": math.nan if r is None else r,
                            "AUC (one-vs-rest)": math.nan if a is None else a}
                           for (c, r), n, a in zip(result["per_class_recall"].items(), result["class_counts"],
                                                   result["per_class_auc"].values(), strict=True)])
    report.table(recall, caption="Per class", digits=3)
    report.figure(roc_figure(result), "ROC of the malignant risk, with the chapter's CNN and dermatologists")
    report.figure(confusion_figure(result), "Confusion matrix")
    report.figure(reliability_figure(result), "Reliability diagram of the top-class confidence")
    if "with_context" in result:
        report.heading("With the patient's age, sex and body site weighed in")
        report.text("The image's calibrated probabilities combined with a logistic regression on age, sex and site "
                    "(derm.clinical), at its own operating point, also chosen on the calibration split.", note=True)
        report.table(headline_table(result["with_context"]), digits=3)
        report.figure(roc_figure(result["with_context"], "Malignant vs benign, with age, sex and site"),
                      "ROC of the malignant risk with the clinical context")
    report.record(evaluation=result)


def headline_table(result: dict[str, Any]):
    """One evaluation's headline figures as a two-column table."""
    import pandas as pd

    malignant = result["malignant"]
    ci = malignant.get("ci95") or {"sensitivity": [math.nan] * 2, "specificity": [math.nan] * 2}
    headline = pd.DataFrame([
        {"metric": "balanced accuracy (7 classes)", "value": result["balanced_accuracy"]},
        {"metric": "  the same with the plain top class (no prior shift)",
         "value": result.get("balanced_accuracy_top_class", math.nan)},
        {"metric": "accuracy (7 classes)", "value": result["accuracy"]},
        {"metric": "macro AUC (one-vs-rest)", "value": result["macro_auc"]},
        {"metric": "malignant AUC", "value": math.nan if malignant["auc"] is None else malignant["auc"]},
        {"metric": "sensitivity at the operating point", "value": malignant["sensitivity"]},
        {"metric": "  95 % bootstrap interval", "value": f"{ci['sensitivity'][0]:.3f} – {ci['sensitivity'][1]:.3f}"},
        {"metric": "specificity at the operating point", "value": malignant["specificity"]},
        {"metric": "  95 % bootstrap interval", "value": f"{ci['specificity'][0]:.3f} – {ci['specificity'][1]:.3f}"},
        {"metric": "malignant-risk threshold", "value": malignant["threshold"]},
        {"metric": f"expected calibration error ({ECE_BINS} bins)", "value": result["calibration"]["ece"]},
    ])
    return headline


def gradcam_cases(result: dict[str, Any], per_kind: int = 2) -> dict[str, list[int]]:
    """Rows worth a look, by the malignant risk at the operating threshold: the surest hits,
    the worst misses (malignant, lowest risk) and the loudest false alarms (benign, highest risk)."""
    probs = np.asarray(result["probabilities"])
    risk = malignant_risk(probs)
    labels = np.array([result["classes"].index(c) for c in result["true_dx"]])
    malignant = MALIGNANT_MASK[labels]
    flagged = risk >= result["malignant"]["threshold"]
    by_risk = np.argsort(-risk, kind="stable")
    pick = lambda mask, order: [int(i) for i in order if mask[i]][:per_kind]  # noqa: E731
    return {"detected malignant": pick(malignant & flagged, by_risk),
            "missed malignant": pick(malignant & ~flagged, by_risk[::-1]),
            "false alarm": pick(~malignant & flagged, by_risk)}


def gradcam_figure(classifier, lesion_set, result: dict[str, Any], per_kind: int = 2):
    """A grid of Grad-CAM overlays (top class) for the cases ``gradcam_cases`` picks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .gradcam import explain

    cases = [(kind, row) for kind, rows in gradcam_cases(result, per_kind).items() for row in rows]
    if not cases:
        return None
    fig, axes = plt.subplots(1, len(cases), figsize=(2.6 * len(cases), 3.0), squeeze=False)
    for ax, (kind, row) in zip(axes[0], cases, strict=True):
        image = lesion_set.read_images(classifier.image_size, np.array([row]), progress=False)[0]
        cam = explain(classifier, image)
        probs = np.asarray(result["probabilities"][row])
        ax.imshow(cam.overlay)
        ax.set_title(f"{kind}\ntrue {result['true_dx'][row]} · top {CLASSES[cam.target]} "
                     f"({probs[cam.target]:.0%})\nrisk {malignant_risk(probs[None])[0]:.2f}", fontsize=7)
        ax.axis("off")
    return fig


def evaluate_classifier(classifier, lesion_set, tta: bool = True, batch_size: int = 64, n_boot: int = 2000,
                        seed: int = 0, progress: bool = True, context: bool = True) -> dict[str, Any]:
    """Run a ``DermClassifier`` over a ``LesionSet`` in batches and measure it at its own threshold.

    With ``context``, a model that carries a clinical model (``derm.clinical``) and data with age,
    sex and site columns are also measured with the context weighed in, at the clinical model's
    own operating point: ``result["with_context"]``."""
    from ..core.progress import bar

    probs = np.empty((len(lesion_set), len(CLASSES)))
    with bar(len(lesion_set), f"classifying {len(lesion_set)} images", disable=not progress) as advance:
        for start in range(0, len(lesion_set), batch_size):
            rows = np.arange(start, min(start + batch_size, len(lesion_set)))
            images = lesion_set.read_images(classifier.image_size, rows, progress=False)
            probs[rows] = classifier.predict_proba(images, tta=tta)
            advance(len(rows))
    result = evaluate_probabilities(probs, lesion_set.labels, classifier.threshold,
                                    getattr(classifier, "target_sensitivity", None), n_boot, seed,
                                    getattr(classifier, "class_bias", None))
    clinical = getattr(classifier, "clinical", None)
    if context and clinical is not None:
        from .clinical import has_context

        if has_context(lesion_set.frame):
            fused = clinical.fuse(probs, lesion_set.frame)
            result["with_context"] = evaluate_probabilities(fused, lesion_set.labels, clinical.threshold,
                                                            clinical.target_sensitivity, n_boot, seed,
                                                            clinical.class_bias)
            result["with_context"]["probabilities"] = fused.round(6).tolist()
    result["probabilities"] = probs.round(6).tolist()
    result["image_ids"] = lesion_set.frame["image_id"].tolist()
    result["true_dx"] = lesion_set.frame["dx"].tolist()
    return result


def write_report_page(result: dict[str, Any], out_dir: Path, title: str, where: str, notes: list[str] = (),
                      gradcams=None) -> Path:
    """The evaluation page; ``gradcams`` is an optional figure from ``gradcam_figure``."""
    from ..core.report import Report

    report = Report(title, case="derm")
    for note in notes:
        report.text(note, note=True)
    add_to_report(report, result, where)
    if gradcams is not None:
        report.figure(gradcams, "Grad-CAM of the top class: where the evidence lies, for the surest detections, "
                                "the missed malignant lesions and the loudest false alarms")
    return report.write(Path(out_dir) / "derm_evaluation.html")
