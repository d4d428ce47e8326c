"""`mlcasebook derm ...`: data, train, evaluate and predict skin-lesion diagnoses."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Case 5 — skin-lesion classifier on HAM10000 (Esteva et al. 2017 at laptop scale). "
                  "Not a medical device.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

DATA_DIR_HELP = ("Folder with images/ + labels.csv (image_id, dx[, lesion_id]), the official HAM10000 release, "
                 "ISIC 2018 Task 3, or a dermamnist*.npz (default: $MLCASEBOOK_DATA/ham10000, else "
                 "../shared/data/ham10000).")
LAYOUT_HELP = "auto (default), folder, ham10000, isic2018 or dermamnist."
SPLITS = ("all", "train", "calibration", "validation")
TTA_HELP = "Average over the four flips at test time (the path the temperature was fitted on)."


@app.command()
def data(
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    layout: str = typer.Option("auto", help=LAYOUT_HELP),
    seed: int = typer.Option(0, help="Seed of the train / calibration / validation split."),
    split_json: Path = typer.Option(None, "--split-json", help="Write the split (seed, class counts) as JSON, "
                                    "e.g. docs/results/derm_split.json."),
    download: str = typer.Option(None, help="Fetch a public copy first (online): dermamnist, dermamnist-64, "
                                 "dermamnist-128, dermamnist-224, isic2018 or ham10000; it lands in the cache."),
) -> None:
    """Load and check a data set; print its classes and the grouped, stratified split."""
    from ..core.report import write_json
    from .data import CLASSES, class_counts, download_dataset, load_dataset, split_indices, split_record

    if download:
        data_dir = download_dataset(download)
        out.print(f"downloaded to {data_dir}")
    lesions = load_dataset(data_dir, layout)
    splits = split_indices(lesions, seed=seed)
    table = Table(title=f"{lesions.name}: {len(lesions)} images, {lesions.frame['lesion_id'].nunique()} lesions "
                  f"({lesions.source})")
    table.add_column("part")
    for name in CLASSES:
        table.add_column(name, justify="right")
    table.add_column("images", justify="right")
    for part, rows in {"all": None, **splits}.items():
        labels = lesions.labels if rows is None else lesions.labels[rows]
        table.add_row(part, *map(str, class_counts(labels).values()), str(len(labels)))
    out.print(table)
    if split_json:
        write_json(split_json, split_record(lesions, splits, seed)
                   | {"command": f"mlcasebook derm data --seed {seed} --split-json {split_json}"})
        out.print(f"wrote {split_json}")


@app.command()
def train(
    out_path: Path = typer.Option(None, "--out", help="Where to write the model (default: the cache, where "
                                  "`predict` looks)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    arch: str = typer.Option("efficientnet-lite0", help="efficientnet-lite0 / -lite1 / -lite2 (ImageNet transfer, "
                             "fine-tuned), frozen-lr (frozen Lite0 features + logistic regression) or small-cnn "
                             "(trained from scratch)."),
    epochs: int = typer.Option(None, min=1, help="Training epochs (default: the architecture's)."),
    seed: int = typer.Option(0, help="Seed of training (augmentation draws, sampling, initialisation); the split "
                             "is always the fixed seed-0 split of `mlcasebook derm data`."),
    max_images: int = typer.Option(None, min=20, help="Train on a seeded subset of this many training images "
                                   "(quick runs)."),
    image_size: int = typer.Option(None, min=32, help="Input size in pixels (default: the architecture's)."),
    imbalance: str = typer.Option(None, help="Class imbalance: sampling (balanced batches) or weighted (weighted "
                                  "loss)."),
    target_sensitivity: float = typer.Option(None, min=0.5, max=1.0, help="Malignant sensitivity the operating "
                                             "threshold aims at on the calibration split (default 0.95)."),
    threads: int = typer.Option(None, min=1, help="CPU threads for torch (default: torch's)."),
    cut: int = typer.Option(None, min=0, max=15, help="Lite only: 0 (default) fine-tunes the whole network from "
                            "pixels; N > 0 freezes the stem and blocks before N at their ImageNet weights, caches "
                            "their activations once and trains the rest (cheaper per epoch, measured worse)."),
    precision: str = typer.Option(None, help="Training arithmetic: float32 (default) or bfloat16 (autocast; "
                                  "faster at 224 px on CPUs with AVX-512 BF16, slower at 160 px)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted run of the same "
                                "command from its last finished epoch."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log parameters and metrics to MLflow."),
) -> None:
    """Train a classifier on the train split; its temperature and malignant operating threshold are
    fitted on the calibration split. Measure it on the untouched validation split with
    `mlcasebook derm evaluate --model PATH --split validation`."""
    from ..core.errors import DataError
    from .models import ARCHS
    from .predict import default_model_path
    from .train import train_classifier

    if arch not in ARCHS:  # before any data is read
        raise DataError(f"unknown architecture '{arch}'", hint=f"choose one of: {', '.join(ARCHS)}")
    target = out_path or default_model_path()
    train_classifier(data_dir=data_dir, arch=arch, out=target, epochs=epochs, seed=seed, resume=resume, track=track,
                     max_images=max_images, image_size=image_size, imbalance=imbalance,
                     target_sensitivity=target_sensitivity, threads=threads, cut=cut, precision=precision)
    out.print(f"model → {target}\nmeasure it: mlcasebook derm evaluate --model {target} --split validation "
              f"--report report/derm")


@app.command()
def ensemble(
    models: list[Path] = typer.Argument(..., help="Two or more model files from `mlcasebook derm train`; the "
                                        "first is the one Grad-CAM explains."),
    out_path: Path = typer.Option(None, "--out", help="Where to write the ensemble (default: the cache path "
                                  "`predict` and `evaluate` use)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    target_sensitivity: float = typer.Option(None, min=0.5, max=1.0, help="Malignant sensitivity the operating "
                                             "threshold aims at on the calibration split (default: the first "
                                             "model's)."),
) -> None:
    """Serve several trained models as one: the mean of their calibrated log-probabilities, with
    its own temperature and malignant operating threshold fitted on the calibration split. The
    result is one file that `predict` and `evaluate` take like a single model."""
    from .ensemble import build_ensemble, save_ensemble
    from .predict import default_model_path

    built = build_ensemble(models, data_dir=data_dir, target_sensitivity=target_sensitivity)
    target = out_path or default_model_path()
    save_ensemble(target, built)
    fitted = built.info["calibration"]
    out.print(f"ensemble of {len(built.members)} ({', '.join(built.info['members'])}): temperature "
              f"{built.temperature:.3f}, malignant threshold {built.threshold:.4f} for sensitivity "
              f"≥ {built.target_sensitivity:g} on {fitted['n_images']} calibration images "
              f"(calibration malignant AUC {fitted['malignant_auc']:.3f})")
    if "prior_shift" in fitted:
        out.print(f"diagnosis call: prior shift {fitted['prior_shift']:g} (calibration balanced accuracy "
                  f"{fitted['balanced_accuracy']:.3f} for the top class, {fitted['balanced_accuracy_after_shift']:.3f} "
                  "for the call)")
    if built.clinical is not None:
        losses = built.clinical.info["calibration_nll_by_weight"]
        out.print(f"clinical context (age, sex, site): weight {built.clinical.weight:g}, calibration log-loss "
                  f"{losses['0']:.3f} without it, {min(losses.values()):.3f} with it")
    out.print(f"model → {target}\nmeasure it: mlcasebook derm evaluate --model {target} --split validation")


@app.command()
def evaluate(
    model_path: Path = typer.Option(None, "--model", help="A model from `mlcasebook derm train` (default: the "
                                    "one `train` writes to the cache)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    layout: str = typer.Option("auto", help=LAYOUT_HELP),
    split: str = typer.Option("all", help="Which images: all (a folder the model never saw), or the model's own "
                              "split of the training data: validation, calibration or train."),
    json_path: Path = typer.Option(None, "--json", help="Write every figure (and each image's probabilities)."),
    report: Path = typer.Option(None, help="Folder for an HTML page with ROC, confusion matrix, reliability."),
    tta: bool = typer.Option(True, "--tta/--no-tta", help=TTA_HELP),
    bootstrap: int = typer.Option(2000, min=100, help="Bootstrap resamples for the 95 % intervals."),
    context: bool = typer.Option(True, "--context/--no-context", help="Also measure with the patient's age, sex "
                                 "and body site weighed in, when the model has a clinical model and the labels "
                                 "table has age, sex and localization columns."),
) -> None:
    """Measure a trained model: balanced accuracy, per-class recall, AUCs, sensitivity and specificity
    at its operating threshold with 95 % bootstrap intervals, calibration (ECE); and the same with
    the clinical context (age, sex, site) where both the model and the data have it."""
    from ..core.errors import DataError
    from ..core.report import print_frame, write_json
    from . import evaluate as ev
    from .data import load_dataset, split_indices
    from .predict import load_model

    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'", hint=f"use one of {', '.join(SPLITS)}")
    classifier = load_model(model_path)
    lesions = load_dataset(data_dir, layout)
    seed = 0  # `derm train` always trains on the fixed seed-0 split
    if split != "all":
        lesions = lesions.subset(split_indices(lesions, seed=seed)[split])
    where = f"{lesions.name} ({lesions.source})" + ("" if split == "all" else f", {split} split, seed {seed}")
    trained_on = (getattr(classifier, "info", None) or {}).get("source")
    if split == "all" and trained_on and lesions.source and Path(trained_on) == Path(lesions.source):
        err.print(f"[yellow]warning:[/] {lesions.source} is the data this model was trained on: 'all' includes its "
                  "training images. Use --split validation for honest figures.", highlight=False, soft_wrap=True)
    result = ev.evaluate_classifier(classifier, lesions, tta=tta, n_boot=bootstrap, context=context)
    result["settings"] = {"model": str(model_path), "data": str(lesions.source), "split": split, "split_seed": seed,
                          "tta": tta, "arch": getattr(classifier, "arch", None)}
    print_frame(headline_frame(result), f"{getattr(classifier, 'arch', 'model')} on {where}", out)
    if "with_context" in result:
        print_frame(headline_frame(result["with_context"]), "the same images with age, sex and site weighed in "
                    "(the clinical model's own operating point)", out)
    elif context and getattr(classifier, "clinical", None) is None:
        out.print("[dim]this model has no clinical model (trained before it existed, or on data without age / sex / "
                  "site): image-only figures[/]")
    if json_path:
        write_json(json_path, result)
        out.print(f"wrote {json_path}")
    if report:
        page = ev.write_report_page(result, report, "Skin-lesion classifier — evaluation", where,
                                    notes=[f"model {model_path}", ev_note(classifier)],
                                    gradcams=ev.gradcam_figure(classifier, lesions, result))
        out.print(f"wrote {page}")


def headline_frame(result: dict):
    import pandas as pd

    malignant = result["malignant"]
    ci = malignant.get("ci95") or {"sensitivity": [float("nan")] * 2, "specificity": [float("nan")] * 2}
    return pd.DataFrame([
        {"metric": "balanced accuracy", "value": result["balanced_accuracy"]},
        {"metric": "macro AUC", "value": result["macro_auc"]},
        {"metric": "malignant AUC", "value": malignant["auc"] if malignant["auc"] is not None else float("nan")},
        {"metric": f"sensitivity [95 % CI {ci['sensitivity'][0]:.3f}–{ci['sensitivity'][1]:.3f}]",
         "value": malignant["sensitivity"]},
        {"metric": f"specificity [95 % CI {ci['specificity'][0]:.3f}–{ci['specificity'][1]:.3f}]",
         "value": malignant["specificity"]},
        {"metric": "ECE (15 bins)", "value": result["calibration"]["ece"]},
    ])


def ev_note(classifier) -> str:
    target = getattr(classifier, "target_sensitivity", None)
    return (f"operating threshold {classifier.threshold:.4f} on the malignant risk"
            + (f", chosen on the calibration split for sensitivity ≥ {target:g}" if target else "")
            + f"; temperature {getattr(classifier, 'temperature', 1.0):.3f}")


@app.command()
def predict(
    images: list[Path] = typer.Argument(..., help="One or more image files (JPEG/PNG, colour)."),
    model_path: Path = typer.Option(None, "--model", help="A model from `mlcasebook derm train` (default: the "
                                    "one `train` writes to the cache)."),
    gradcam: Path = typer.Option(None, help="Folder for a Grad-CAM picture per image (<name>_gradcam.png)."),
    top: int = typer.Option(3, min=1, max=7, help="How many diagnoses to list."),
    tta: bool = typer.Option(True, "--tta/--no-tta", help=TTA_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    age: float = typer.Option(None, help="Patient's age in years (clinical context, optional)."),
    sex: str = typer.Option(None, help="Patient's sex: male or female (optional)."),
    site: str = typer.Option(None, help="Body site as HAM10000 names it: abdomen, acral, back, chest, ear, face, "
                             "foot, genital, hand, lower extremity, neck, scalp, trunk, upper extremity (optional)."),
) -> None:
    """Top diagnoses with calibrated probabilities and the malignant risk against the model's
    operating threshold. With --age/--sex/--site (the same for every image) the clinical context
    is weighed in. Not a medical device. Unreadable files are reported and skipped; the exit
    status is 2 if any file failed."""
    from .clinical import checked_context
    from .predict import NOT_A_MEDICAL_DEVICE, load_model, predict_images

    context = checked_context(age, sex, site)  # before the model loads: bad input fails fast
    classifier = load_model(model_path)
    predictions = predict_images(classifier, images, top=top, gradcam_dir=gradcam, tta=tta, context=context)
    if as_json:
        typer.echo(json.dumps({"predictions": [p.to_dict() for p in predictions], "notice": NOT_A_MEDICAL_DEVICE},
                              indent=2))
    else:
        for prediction in predictions:
            if not prediction.ok:
                continue
            given = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in (prediction.context or {}).items())
            out.print(f"[bold]{prediction.image}[/]" + (f"  (with {given})" if given else ""))
            for rank, item in enumerate(prediction.top, 1):
                out.print(f"  {rank}. {item['dx']:<6} {100 * item['probability']:5.1f} %  {item['name']}")
            if prediction.call != prediction.top[0]["dx"]:
                out.print(f"  the model's call: {prediction.call} — not the most probable class: the call weighs "
                          "rarer diagnoses up (fitted for balanced accuracy)")
            verdict = "ABOVE" if prediction.flagged else "below"
            out.print(f"  malignant risk {100 * prediction.malignant_risk:.1f} % — {verdict} the operating threshold "
                      f"{100 * prediction.threshold:.1f} %" + (" (would be referred)" if prediction.flagged else ""))
            if prediction.gradcam:
                out.print(f"  Grad-CAM → {prediction.gradcam}")
        out.print(f"[dim]{NOT_A_MEDICAL_DEVICE}[/]")
    failed = [p for p in predictions if not p.ok]
    for prediction in failed:
        err.print(f"[red]error:[/] {prediction.error}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(2)
