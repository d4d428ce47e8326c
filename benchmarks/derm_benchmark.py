"""Skin-lesion classification on HAM10000: three models on one fixed split, beside the chapter's rows.

Trains (or reuses, when the same configuration already produced it) and evaluates, in one run:

- ``small-cnn``: a small CNN from scratch at 64 px (what no transfer learning gives);
- ``frozen-lr``: frozen ImageNet EfficientNet-Lite0 features + logistic regression;
- ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 fine-tuned end to end at 160 px, once per
  ``--lite-seeds`` seed (default 0 and 1: the spread between two seeds, and a second member);
- ``efficientnet-lite0-224`` (with ``--lite-sizes 160 224``): the same at 224 px for 12 epochs,
  trained in bfloat16 autocast so that it fits the issue's 60 minutes on 2 cores;

and, when more than one model ran, their ensemble as ``mlcasebook derm ensemble`` builds it (the
mean of the members' tempered log-probabilities, its own temperature, threshold and prior shift
fitted on the calibration split) — all models, and the ensemble of the first seed of each Lite
recipe with the baselines.

Below every row, the same model with the patient's age, sex and body site weighed in
(``derm.clinical``: a logistic regression on the train split, combined by Bayes' rule, its
weight, temperature, threshold and prior shift chosen on the calibration split); ``--no-context``
leaves these rows out.

Every model's diagnosis call is its top class after a prior shift (``evaluate.fit_prior_shift``,
strength chosen on the calibration split for balanced accuracy); the plain top class's balanced
accuracy is reported beside it.

Protocol: ``derm.data.split_indices`` seed 0 (train 4,307 / calibration 479 / validation
1,198 images, stratified by diagnosis, grouped by lesion). Every choice — epochs and settings
(fixed in ``derm.train.DEFAULTS`` before this run), the logistic regression's C, the temperature
and the malignant operating threshold (target sensitivity 0.95) — is made on train or
calibration data; the validation images are read only here, once, for the figures. Validation
predictions use test-time augmentation (mean logits over the four flips), as ``derm predict`` does.

Figures per model: balanced accuracy (ISIC 2018 Task 3 metric), per-class recall, macro AUC,
malignant-vs-benign AUC, sensitivity and specificity at the calibration-chosen threshold with
95 % bootstrap intervals, ECE before / after temperature scaling, training time (wall, cache +
epochs), and single-image CPU latency and images/s on one thread.

    flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/derm_benchmark.py --threads 2 \
        --lite-seeds 0 1 2 --lite-sizes 160 224 --json docs/results/derm.json   # the figures in docs/RESULTS.md
    .venv/bin/python benchmarks/derm_benchmark.py --archs small-cnn frozen-lr   # the cheap baselines only
    .venv/bin/python benchmarks/derm_benchmark.py --quick                        # smoke run, a few minutes
    flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/derm_benchmark.py --imbalance-study \
        --json docs/results/derm_imbalance.json    # sampling vs weighted loss, on calibration data

Models are kept in ``<cache>/derm/models/<arch>.pt`` (``--models-dir``); ``--retrain`` starts over.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common import console, print_table
from mlcasebook.core.claims import claims_for
from mlcasebook.core.report import write_json
from mlcasebook.core.sources import cache_dir
from mlcasebook.derm.clinical import fit_clinical
from mlcasebook.derm.data import CLASSES, MALIGNANT_MASK, load_dataset, split_indices
from mlcasebook.derm.ensemble import calibrate_ensemble, mean_log_probabilities
from mlcasebook.derm.evaluate import (
    bootstrap_sensitivity_specificity,
    choose_threshold,
    evaluate_probabilities,
    expected_calibration_error,
    fit_prior_shift,
    malignant_risk,
    sensitivity_specificity,
    softmax,
)
from mlcasebook.derm.models import (
    CACHED_CUT,
    LITE_ARCHS,
    TTA_ELEMENTS,
    LiteClassifierNet,
    dihedral,
    load_classifier,
    to_pixels,
)
from mlcasebook.derm.train import train_classifier, training_prior

# The main model first: its figures are written even if a baseline is interrupted.
ARCHS = ("efficientnet-lite0", "frozen-lr", "small-cnn")
TARGETS = {"balanced_accuracy": 0.80, "malignant_auc": 0.93, "sensitivity": 0.89, "specificity": 0.83}


_TRUNKS: dict[tuple, torch.Tensor] = {}


def _trunk_key(module: LiteClassifierNet, image_size: int) -> tuple:
    """Identifies a frozen trunk by its weights, so two models share activations only if equal."""
    frozen = [*module.stem.state_dict().values(), *module.blocks[:module.cut].state_dict().values()]
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in frozen)).hexdigest()
    return module.backbone, image_size, module.cut, digest


def validation_logits(classifier, lesion_set, rows: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """Untempered test-time-augmented logits of ``rows`` — what ``classifier.logits(tta=True)`` gives.

    The fine-tuned Lite0 and the frozen-LR model share their frozen ImageNet trunk (checked by
    a digest of its weights), so its activations for the four flips are computed once, in float32,
    and both models run their remaining layers on them: the same arithmetic as the full forward."""
    images = lesion_set.read_images(classifier.image_size, rows)
    module = classifier.module
    with torch.inference_mode():
        if not isinstance(module, LiteClassifierNet) or module.cut == 0:  # nothing frozen to share
            return torch.cat([classifier.logits(images[s:s + 32], tta=True)
                              for s in range(0, len(images), 32)]).double().numpy()
        key = (_trunk_key(module, classifier.image_size), tuple(rows[:3]), len(rows))
        if key not in _TRUNKS:
            pixels = to_pixels(images, classifier.image_size)
            _TRUNKS[key] = torch.stack([torch.cat([module.trunk(dihedral(pixels[s:s + batch_size], element))
                                                   for s in range(0, len(pixels), batch_size)])
                                        for element in TTA_ELEMENTS])
        activations = _TRUNKS[key]
        return torch.stack([torch.cat([module.from_trunk(view[s:s + 64]) for s in range(0, len(view), 64)])
                            for view in activations]).mean(0).double().numpy()


def latency(classifier, image: np.ndarray, threads: int, repeats: int = 10) -> dict[str, float]:
    """Median seconds to classify one image (no TTA and with the four flips) at ``threads``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    out = {}
    try:
        for tta in (False, True):
            classifier.predict_proba(image[None], tta=tta)  # warm-up
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                classifier.predict_proba(image[None], tta=tta)
                times.append(time.perf_counter() - started)
            out["tta_ms" if tta else "ms"] = 1000 * statistics.median(times)
        batch = np.repeat(image[None], 16, axis=0)
        classifier.predict_proba(batch[:8], tta=False)
        started = time.perf_counter()
        classifier.predict_proba(batch, tta=False)
        out["images_per_second"] = len(batch) / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return out


def specificity_at(roc: dict, sensitivity: float) -> float:
    """Best specificity on the validation ROC at a sensitivity of at least ``sensitivity`` (a
    reading of the curve, for comparison with the chapter's points; not an operating point)."""
    tpr, fpr = np.asarray(roc["tpr"]), np.asarray(roc["fpr"])
    reached = tpr >= sensitivity
    return float(1 - fpr[reached].min()) if reached.any() else math.nan


def thin_roc(roc: dict, points: int = 200) -> dict:
    keep = np.unique(np.linspace(0, len(roc["fpr"]) - 1, points).round().astype(int))
    return {"auc": roc["auc"], "fpr": np.asarray(roc["fpr"])[keep].round(5).tolist(),
            "tpr": np.asarray(roc["tpr"])[keep].round(5).tolist()}


def headline(model: str, result: dict) -> dict:
    """The figures every row reports, from ``evaluate_probabilities``' result."""
    malignant = result["malignant"]
    return {
        "model": model,
        "balanced_accuracy": result["balanced_accuracy"],
        "balanced_accuracy_top_class": result["balanced_accuracy_top_class"],
        "accuracy": result["accuracy"],
        "macro_auc": result["macro_auc"],
        "malignant_auc": malignant["auc"],
        "sensitivity": malignant["sensitivity"],
        "sensitivity_ci95": malignant["ci95"]["sensitivity"],
        "specificity": malignant["specificity"],
        "specificity_ci95": malignant["ci95"]["specificity"],
        "threshold": malignant["threshold"],
        "roc_specificity_at_sensitivity_0.89": specificity_at(malignant["roc"], 0.89),
        "roc_specificity_at_sensitivity_0.95": specificity_at(malignant["roc"], 0.95),
        "ece_after_temperature": result["calibration"]["ece"],
    }


# The chapter's two rows give two operating points; the model's own threshold aims at the CNN's
# sensitivity (0.95), this second one, also chosen on the calibration split, at the dermatologists'.
DERMATOLOGIST_SENSITIVITY = 0.89


def dermatologist_point(cal_probs: np.ndarray, cal_labels: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                        seed: int) -> dict:
    """Validation sensitivity / specificity (95 % bootstrap intervals) at the threshold chosen on
    the calibration split for sensitivity 0.89."""
    threshold = choose_threshold(malignant_risk(cal_probs), MALIGNANT_MASK[cal_labels], DERMATOLOGIST_SENSITIVITY)
    risk, is_malignant = malignant_risk(probs), MALIGNANT_MASK[labels]
    sensitivity, specificity = sensitivity_specificity(risk, is_malignant, threshold)
    ci = bootstrap_sensitivity_specificity(risk, is_malignant, threshold, 2000, seed)
    return {"threshold_for_sensitivity_0.89": threshold, "sensitivity_at_0.89_point": sensitivity,
            "sensitivity_at_0.89_point_ci95": ci["sensitivity"], "specificity_at_0.89_point": specificity,
            "specificity_at_0.89_point_ci95": ci["specificity"]}


# The Lite recipes besides the default (160 px, 15 epochs, float32): 224 px needs bfloat16 autocast
# to fit the 60 minutes on 2 cores (19.2 img/s on average; a float32 step measured 12.2), and 12 epochs.
LITE_RECIPES = {160: {}, 224: {"image_size": 224, "epochs": 12, "precision": "bfloat16"}}


def context_row(args, lesion_set, split, prior: np.ndarray, name: str, cal_probs: np.ndarray, probs: np.ndarray,
                target: float) -> tuple[dict, dict]:
    """The same model with the patient's age, sex and site weighed in (``derm.clinical``): the
    context model fitted on the train split, its weight, temperature, threshold and prior shift on
    the calibration split, from the model's calibrated probabilities there."""
    frame = lesion_set.frame
    cal_rows = split["calibration"][:100] if args.quick else split["calibration"]
    rows = split["validation"][:150] if args.quick else split["validation"]
    cal_labels, labels = lesion_set.labels[cal_rows], lesion_set.labels[rows]
    clinical = fit_clinical(frame.iloc[split["train"]], lesion_set.labels[split["train"]], frame.iloc[cal_rows],
                            cal_probs, cal_labels, target, prior)
    fused = clinical.fuse(probs, frame.iloc[rows])
    result = evaluate_probabilities(fused, labels, clinical.threshold, target, n_boot=2000, seed=args.seed,
                                    class_bias=clinical.class_bias)
    summary = {**headline(f"{name} + age/sex/site", result),
               **dermatologist_point(clinical.fuse(cal_probs, frame.iloc[cal_rows]), cal_labels, fused, labels,
                                     args.seed),
               "context_weight": clinical.weight, "temperature": clinical.temperature}
    result["malignant"]["roc"] = thin_roc(result["malignant"]["roc"])
    return summary, {"summary": summary, "evaluation": result, "clinical": clinical.info}


def model_name(arch: str, seed: int, size: int = 160) -> str:
    name = arch if size == 160 or arch not in LITE_ARCHS else f"{arch}-{size}"
    return name if seed == 0 else f"{name}-seed{seed}"


def run_model(arch: str, seed: int, size: int, args, lesion_set, split, prior: np.ndarray) -> tuple[dict, dict]:
    name = model_name(arch, seed, size)
    out = args.models_dir / f"{name}.pt"
    started = time.perf_counter()
    recipe = LITE_RECIPES[size] if arch in LITE_ARCHS else {}
    quick = {"max_images": 200, "epochs": 1 if arch != "frozen-lr" else None} if args.quick else {}
    train_classifier(args.data_dir, arch=arch, out=out, seed=seed, resume=not args.retrain,
                     threads=args.threads, track=False, progress=True, **{**recipe, **quick})
    console.print(f"{name}: model ready in {time.perf_counter() - started:.0f} s ({out})")
    classifier = load_classifier(out)
    info = classifier.info
    rows = split["validation"][:150] if args.quick else split["validation"]
    labels = lesion_set.labels[rows]
    logits = validation_logits(classifier, lesion_set, rows)
    raw = softmax(logits)
    probs = softmax(logits, classifier.temperature)
    cal_rows = split["calibration"][:100] if args.quick else split["calibration"]
    cal_logits = validation_logits(classifier, lesion_set, cal_rows)
    # Models trained before the prior shift existed get it here, exactly as training fits it.
    bias = classifier.class_bias
    if bias is None:
        bias = fit_prior_shift(softmax(cal_logits, classifier.temperature), lesion_set.labels[cal_rows],
                               prior)["class_bias"]
    result = evaluate_probabilities(probs, labels, classifier.threshold, classifier.target_sensitivity,
                                    n_boot=2000, seed=args.seed, class_bias=bias)
    one_image = lesion_set.read_images(classifier.image_size, rows[:1], progress=False)[0]
    # One thread only: on this shared 2-core box two torch threads oversubscribe the cores
    # (measured 2.3 s instead of 31 ms per image while other jobs ran).
    timing = {"threads_1": latency(classifier, one_image, 1)}
    train_seconds = info.get("cache_seconds", 0.0) + info.get("train_seconds", 0.0)
    summary = {
        **headline(name, result),
        **dermatologist_point(softmax(cal_logits, classifier.temperature), lesion_set.labels[cal_rows], probs, labels,
                              args.seed),
        "seed": seed,
        "image_size": classifier.image_size,
        "precision": info["config"].get("precision", "float32"),
        "ece_before_temperature": expected_calibration_error(raw, labels),
        "temperature": classifier.temperature,
        "train_seconds": train_seconds,
        "cache_seconds": info.get("cache_seconds", 0.0),
        "epochs": info["config"]["epochs"],
        "train_threads": info.get("threads"),
        "latency_ms_1_thread": timing["threads_1"]["ms"],
        "latency_tta_ms_1_thread": timing["threads_1"]["tta_ms"],
        "images_per_second_1_thread": timing["threads_1"]["images_per_second"],
    }
    result["malignant"]["roc"] = thin_roc(result["malignant"]["roc"])
    detail = {"summary": summary, "evaluation": result, "timing": timing,
              "training": {k: v for k, v in info.items() if k != "source"}}
    # Kept for the ensemble row, dropped before the JSON is written.
    detail["_classifier"] = classifier
    detail["_logits"] = {"calibration": cal_logits, "validation": logits}
    detail["_probs"] = {"calibration": softmax(cal_logits, classifier.temperature), "validation": probs}
    return summary, detail


def ensemble_row(args, lesion_set, split, prior: np.ndarray, details: dict, members: list[str]) -> tuple[dict, dict]:
    """``members`` served as one ``derm.ensemble.DermEnsemble`` (what `mlcasebook derm ensemble`
    writes): the mean of the members' tempered log-probabilities, with its own temperature,
    malignant threshold and prior shift fitted on the calibration split."""
    cal_rows = split["calibration"][:100] if args.quick else split["calibration"]
    rows = split["validation"][:150] if args.quick else split["validation"]
    classifiers = [details[m]["_classifier"] for m in members]
    temperatures = [c.temperature for c in classifiers]
    target = classifiers[0].target_sensitivity
    cal_logits = mean_log_probabilities([details[m]["_logits"]["calibration"] for m in members], temperatures)
    combined = calibrate_ensemble(classifiers, cal_logits.numpy(), lesion_set.labels[cal_rows], target,
                                  prior=prior)
    logits = mean_log_probabilities([details[m]["_logits"]["validation"] for m in members], temperatures).numpy()
    probs = softmax(logits, combined.temperature)
    result = evaluate_probabilities(probs, lesion_set.labels[rows], combined.threshold, target, n_boot=2000,
                                    seed=args.seed, class_bias=combined.class_bias)
    summary = {
        **headline("ensemble: " + " + ".join(members), result),
        **dermatologist_point(softmax(cal_logits.numpy(), combined.temperature), lesion_set.labels[cal_rows], probs,
                              lesion_set.labels[rows], args.seed),
        "temperature": combined.temperature,
        "train_seconds": sum(details[m]["summary"]["train_seconds"] for m in members),
        "latency_ms_1_thread": sum(details[m]["summary"]["latency_ms_1_thread"] for m in members),
        "latency_tta_ms_1_thread": sum(details[m]["summary"]["latency_tta_ms_1_thread"] for m in members),
    }
    result["malignant"]["roc"] = thin_roc(result["malignant"]["roc"])
    return summary, {"summary": summary, "evaluation": result, "members": members,
                     "_probs": {"calibration": softmax(cal_logits.numpy(), combined.temperature), "validation": probs}}


def imbalance_study(args, lesion_set, split) -> dict:
    """Balanced sampling vs an inverse-frequency weighted loss for Lite0 fine-tuned on cached
    activations (cut 11, the recipe this study was made with: 20 min a model instead of 40),
    both measured on the calibration split (the choice must not look at validation)."""
    rows = split["calibration"]
    labels = lesion_set.labels[rows]
    study = {}
    for imbalance in ("sampling", "weighted"):
        out = args.models_dir / f"efficientnet-lite0-cut{CACHED_CUT}-{imbalance}.pt"
        train_classifier(args.data_dir, arch="efficientnet-lite0", out=out, seed=args.seed, imbalance=imbalance,
                         cut=CACHED_CUT, resume=not args.retrain, threads=args.threads, track=False, progress=True)
        classifier = load_classifier(out)
        logits = validation_logits(classifier, lesion_set, rows)
        result = evaluate_probabilities(softmax(logits, classifier.temperature), labels, classifier.threshold,
                                        classifier.target_sensitivity, n_boot=200, seed=args.seed)
        study[imbalance] = {"calibration_balanced_accuracy": result["balanced_accuracy"],
                            "calibration_macro_auc": result["macro_auc"],
                            "calibration_malignant_auc": result["malignant"]["auc"],
                            "calibration_per_class_recall": result["per_class_recall"],
                            "train_seconds": classifier.info.get("cache_seconds", 0.0)
                            + classifier.info.get("train_seconds", 0.0)}
    print_table(pd.DataFrame([{"imbalance": k, **{m: v for m, v in row.items() if m != "calibration_per_class_recall"}}
                              for k, row in study.items()]),
                "Class imbalance, EfficientNet-Lite0, calibration split (479 images)")
    return study


def chapter_rows() -> list[dict]:
    claims = claims_for("derm")
    return [{"model": f"chapter: {who}", "accuracy": claims[f"{key}_accuracy"].value / 100,
             "sensitivity": claims[f"{key}_sensitivity"].value / 100,
             "specificity": claims[f"{key}_specificity"].value / 100}
            for who, key in (("CNN (Esteva et al. 2017)", "cnn"), ("dermatologists", "dermatologist"))]


def write_results(args, argv, split, summaries: list[dict], details: dict) -> None:
    write_json(args.json, {
        "command": "flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/derm_benchmark.py "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "data": "HAM10000 (shared copy: 5,984 images, one per lesion, 224x224)",
        "split": {"function": "mlcasebook.derm.data.split_indices", "seed": 0,
                  **{part: len(rows) for part, rows in split.items()}},
        "seed": args.seed,
        "protocol": "temperature, threshold (target sensitivity 0.95; a second one for 0.89), prior shift of the "
                    "diagnosis call, LR's C and the clinical context's weight chosen on the calibration split (the "
                    "context model on train); validation read once; TTA = mean logits over four flips",
        "machine": f"2 CPU cores, torch CPU, {args.threads} torch thread(s) for training; latency on one thread; "
                   "wall clock",
        "classes": list(CLASSES),
        "targets": TARGETS,
        "models": summaries,
        "chapter": chapter_rows(),
        "details": {name: {k: v for k, v in detail.items() if not k.startswith("_")}
                    for name, detail in details.items()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="HAM10000 folder (default: ../shared/data)")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--models-dir", type=Path, default=cache_dir() / "derm" / "models")
    parser.add_argument("--seed", type=int, default=0, help="seed of the baselines' training and of the bootstrap")
    parser.add_argument("--lite-seeds", type=int, nargs="+", default=[0, 1],
                        help="training seeds of the fine-tuned Lite0 (the baselines use seed 0)")
    parser.add_argument("--lite-sizes", type=int, nargs="+", default=[160], choices=sorted(LITE_RECIPES),
                        help="Lite recipes: 160 (default: 160 px, 15 epochs, float32, once per --lite-seeds seed) "
                             "and 224 (224 px, 12 epochs, bfloat16; seed --seed)")
    parser.add_argument("--no-context", dest="context", action="store_false",
                        help="skip the rows with the clinical context (age, sex, site) weighed in")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for training (2 on a quiet 2-core box; on a busy one two threads "
                             "measured 10x slower than one)")
    parser.add_argument("--retrain", action="store_true", help="train again even if the model file is current")
    parser.add_argument("--imbalance-study", action="store_true",
                        help="only compare balanced sampling with a weighted loss (Lite0) on the calibration split")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 training images, one epoch, 150 validation images (figures meaningless)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here (e.g. docs/results/derm.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.models_dir = args.models_dir / "quick"
    torch.set_num_threads(args.threads)

    lesion_set = load_dataset(args.data_dir)
    split = split_indices(lesion_set, seed=0)
    if args.imbalance_study:
        study = imbalance_study(args, lesion_set, split)
        if args.json:
            write_json(args.json, {"command": "flock /tmp/mlcasebook-cpu.lock .venv/bin/python "
                                              "benchmarks/derm_benchmark.py " + " ".join(argv or sys.argv[1:]),
                                   "split": "calibration part of derm.data.split_indices seed 0", "seed": args.seed,
                                   "study": study, "date": time.strftime("%Y-%m-%d %H:%M:%S")})
        return 0
    summaries, details = [], {}
    prior = training_prior(lesion_set.labels[split["train"]])  # of the whole train split, as `derm train` uses
    runs = [(arch, seed, size) for arch in args.archs
            for size in (args.lite_sizes if arch in LITE_ARCHS else [None])
            for seed in (args.lite_seeds if arch in LITE_ARCHS and size == 160 else [args.seed])]
    target = None

    def add(summary: dict, detail: dict) -> None:
        summaries.append(summary)
        details[summary["model"]] = detail
        if args.context:  # the same model with the clinical context, right below it
            probs = detail["_probs"]
            row, row_detail = context_row(args, lesion_set, split, prior, summary["model"], probs["calibration"],
                                          probs["validation"], target)
            summaries.append(row)
            details[row["model"]] = row_detail
        if args.json:  # after every model, so that a long run interrupted later keeps what it measured
            write_results(args, argv, split, summaries, details)

    models = []
    for arch, seed, size in runs:
        summary, detail = run_model(arch, seed, size or 160, args, lesion_set, split, prior)
        target = detail["_classifier"].target_sensitivity
        models.append(summary["model"])
        add(summary, detail)
    # All models; and the ensemble of the first seed of each Lite recipe with the baselines.
    first_seeds = [model_name(arch, seed, size or 160) for arch, seed, size in runs if seed == args.seed
                   or (arch in LITE_ARCHS and size == 160 and seed == args.lite_seeds[0])]
    ensembles = [models, first_seeds]
    for members in [m for i, m in enumerate(ensembles) if len(m) > 1 and m not in ensembles[:i]]:
        add(*ensemble_row(args, lesion_set, split, prior, details, members))
    table = pd.DataFrame(summaries)
    shown = ["model", "accuracy", "balanced_accuracy", "balanced_accuracy_top_class", "macro_auc", "malignant_auc",
             "sensitivity", "specificity",
             "ece_before_temperature", "ece_after_temperature", "train_seconds", "latency_ms_1_thread"]
    print_table(pd.concat([table[shown], pd.DataFrame(chapter_rows())], ignore_index=True),
                "HAM10000 validation split (1,198 images), operating point chosen on calibration data")
    recall = pd.DataFrame([{"model": s["model"], **details[s["model"]]["evaluation"]["per_class_recall"]}
                           for s in summaries])
    print_table(recall, "Per-class recall (validation)")
    if args.json:
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
