"""Clinical context (age, sex, site): features by hand, input checks, the Bayes fusion on data
where the answer is known, and the product paths (train, ensemble, evaluate, predict)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import run_case_cli
from mlcasebook.core.errors import DataError
from mlcasebook.derm.clinical import (
    SITES,
    ClinicalModel,
    checked_context,
    context_features,
    fit_clinical,
    has_context,
)
from mlcasebook.derm.data import CLASSES
from mlcasebook.derm.evaluate import softmax

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000"


def test_context_features_by_hand():
    frame = pd.DataFrame({"age": [70.0, None], "sex": ["Female", "unknown"], "localization": ["face", "nowhere"]})
    features = context_features(frame)
    assert features.shape == (2, 3 + 5 + 2 + len(SITES))
    np.testing.assert_allclose(features[0, :3], [0.7, 0.49, 0.0])
    np.testing.assert_array_equal(features[0, 3:8], [0, 0, 0, 1, 0])  # the 60–75 band
    np.testing.assert_array_equal(features[0, 8:10], [0, 1])  # female, case ignored
    assert features[0, 10 + SITES.index("face")] == 1 and features[0, 10:].sum() == 1
    # missing age: mean-like value with its flag; unknown sex and site: all zeros
    np.testing.assert_allclose(features[1, :3], [0.5, 0.25, 1.0])
    assert features[1, 3:].sum() == 0


def test_checked_context_names_every_bad_value():
    assert checked_context(45, "MALE", "Lower_Extremity") == checked_context(45, "male", "lower extremity")
    assert not checked_context(None, None, None).given()
    with pytest.raises(DataError) as error:
        checked_context(130, "other", "nose")
    message = error.value.message
    assert "age 130" in message and "'other'" in message and "'nose'" in message and "scalp" in message


def test_has_context_needs_the_columns_and_one_known_value():
    assert not has_context(pd.DataFrame({"image_id": ["a"], "dx": ["nv"]}))
    assert not has_context(pd.DataFrame({"age": [None], "sex": ["unknown"], "localization": ["unknown"]}))
    assert has_context(pd.DataFrame({"age": [None], "sex": ["unknown"], "localization": ["back"]}))


def _synthetic(n: int, rng: np.random.Generator, informative: bool):
    """Labels, context rows and calibrated-looking image probabilities. With ``informative``
    the site tells the class apart in part (each class has its own favourite site)."""
    labels = rng.integers(0, len(CLASSES), size=n)
    site_of = np.where(rng.random(n) < 0.6, labels, rng.integers(0, len(CLASSES), size=n)) if informative \
        else rng.integers(0, len(CLASSES), size=n)
    frame = pd.DataFrame({"age": rng.integers(20, 80, size=n).astype(float), "sex": rng.choice(["male", "female"], n),
                          "localization": np.array(SITES)[site_of]})
    logits = rng.normal(size=(n, len(CLASSES))) * 1.5 + 1.5 * np.eye(len(CLASSES))[labels]
    return labels, frame, softmax(logits)


def _nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(probs[np.arange(len(labels)), labels]).mean())


@pytest.mark.parametrize("informative", [True, False])
def test_fusion_helps_exactly_when_the_context_carries_information(informative):
    rng = np.random.default_rng(0)
    train, cal, test = (_synthetic(n, rng, informative) for n in (3000, 1000, 2000))
    prior = np.bincount(train[0], minlength=len(CLASSES)) / len(train[0])
    model = fit_clinical(train[1], train[0], cal[1], cal[2], cal[0], 0.9, prior)
    fused = model.fuse(test[2], test[1])
    np.testing.assert_allclose(fused.sum(axis=1), 1.0)
    if informative:
        assert model.weight >= 0.5
        assert _nll(fused, test[0]) < _nll(test[2], test[0]) - 0.1
    else:  # noise: little weight, and no harm
        assert model.weight <= 0.25
        assert _nll(fused, test[0]) < _nll(test[2], test[0]) + 0.01
    restored = ClinicalModel.from_record(json.loads(json.dumps(model.record())))
    np.testing.assert_allclose(restored.fuse(test[2], test[1]), fused)
    assert restored.threshold == model.threshold and restored.weight == model.weight


def test_no_context_columns_no_clinical_model():
    rng = np.random.default_rng(1)
    labels, frame, probs = _synthetic(200, rng, True)
    bare = frame.drop(columns=["age", "sex", "localization"])
    assert fit_clinical(bare, labels, frame, probs, labels, 0.9, np.full(7, 1 / 7)) is None


# ---- the product paths, on real images ------------------------------------------------------


@pytest.fixture(scope="module")
def context_folder(tmp_path_factory) -> Path:
    """Twelve real images of every class with their age, sex and site: enough for a calibration split."""
    if not (SHARED / "labels.csv").is_file():
        pytest.skip(f"shared HAM10000 copy not found at {SHARED}")
    rows = pd.read_csv(SHARED / "labels.csv").groupby("dx").head(12).reset_index(drop=True)
    root = tmp_path_factory.mktemp("derm_context")
    (root / "images").mkdir()
    for image_id in rows["image_id"]:
        shutil.copy(SHARED / "images" / f"{image_id}.jpg", root / "images")
    rows[["image_id", "lesion_id", "dx", "age", "sex", "localization"]].to_csv(root / "labels.csv", index=False)
    return root


def test_ensemble_fits_the_context_and_evaluate_and_predict_use_it(context_folder, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from mlcasebook.derm.models import DermClassifier, build_model, load_classifier, save_classifier

    paths = []
    for seed, size in ((0, 48), (1, 32)):
        torch.manual_seed(seed)
        paths.append(save_classifier(tmp_path / f"m{seed}.ckpt", DermClassifier(
            build_model("small-cnn", pretrained=False), "small-cnn", size, threshold=0.4, target_sensitivity=0.9)))
    ensemble_path = tmp_path / "ensemble.ckpt"
    code, stdout, stderr = run_case_cli(capsys, "derm", "ensemble", *paths, "--data-dir", context_folder,
                                        "--out", ensemble_path)
    assert code == 0, stderr
    assert "clinical context (age, sex, site): weight" in stdout
    ensemble = load_classifier(ensemble_path)
    assert ensemble.clinical is not None and ensemble.clinical.info["n_train"] > 0

    out_json = tmp_path / "eval.json"
    code, stdout, stderr = run_case_cli(capsys, "derm", "evaluate", "--model", ensemble_path, "--data-dir",
                                        context_folder, "--json", out_json, "--bootstrap", "100", "--no-tta",
                                        "--report", tmp_path / "report")
    assert code == 0, stderr
    assert "weighed" in " ".join(stdout.split())  # a table title, wrapped to the terminal
    result = json.loads(out_json.read_text())
    assert result["with_context"]["malignant"]["threshold"] == pytest.approx(ensemble.clinical.threshold)
    assert np.shape(result["with_context"]["probabilities"]) == (84, 7)
    assert "age, sex and body site" in (tmp_path / "report" / "derm_evaluation.html").read_text()

    image = sorted((context_folder / "images").iterdir())[0]
    code, stdout, stderr = run_case_cli(capsys, "derm", "predict", image, "--model", ensemble_path, "--json",
                                        "--age", "70", "--sex", "female", "--site", "face")
    assert code == 0, stderr
    with_context = json.loads(stdout)["predictions"][0]
    assert with_context["context"] == {"age": 70.0, "sex": "female", "site": "face"}
    assert with_context["threshold"] == pytest.approx(ensemble.clinical.threshold)
    code, stdout, _ = run_case_cli(capsys, "derm", "predict", image, "--model", ensemble_path, "--json")
    alone = json.loads(stdout)["predictions"][0]
    assert "context" not in alone and alone["threshold"] == pytest.approx(ensemble.threshold)
    assert alone["top"] != with_context["top"]

    code, _, stderr = run_case_cli(capsys, "derm", "predict", image, "--model", ensemble_path, "--site", "nose")
    assert code == 2 and "'nose'" in stderr and "scalp" in stderr
    code, _, stderr = run_case_cli(capsys, "derm", "predict", image, "--model", paths[0], "--age", "50")
    assert code == 2 and "no clinical model" in stderr
