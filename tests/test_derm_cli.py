"""The derm product as a user meets it: predict, evaluate and data through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cli_helpers import run_case_cli
from mlcasebook.core.errors import DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000"


def run_cli(*args, timeout=300):
    """A real process, as a user runs it (slow: imports torch each time, so used sparingly)."""
    env = os.environ | {"MLCASEBOOK_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mlcasebook", "derm", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_main(capsys, *args) -> tuple[int, str, str]:
    return run_case_cli(capsys, "derm", *args)


def copy_real_images(tmp_path_factory, per_class: int) -> Path:
    """images/ + labels.csv with the first ``per_class`` real images of every class."""
    if not (SHARED / "labels.csv").is_file():
        pytest.skip(f"shared HAM10000 copy not found at {SHARED}")
    rows = pd.read_csv(SHARED / "labels.csv").groupby("dx").head(per_class).reset_index(drop=True)
    root = tmp_path_factory.mktemp(f"derm_{per_class}_per_class")
    (root / "images").mkdir()
    for image_id in rows["image_id"]:
        shutil.copy(SHARED / "images" / f"{image_id}.jpg", root / "images")
    rows[["image_id", "lesion_id", "dx"]].to_csv(root / "labels.csv", index=False)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three real images of every class (21 images)."""
    return copy_real_images(tmp_path_factory, 3)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained small CNN saved through derm-train's API: the plumbing, not the accuracy."""
    torch = pytest.importorskip("torch")
    from mlcasebook.derm.models import DermClassifier, build_model, save_classifier

    torch.manual_seed(0)
    classifier = DermClassifier(build_model("small-cnn", pretrained=False), "small-cnn", 48, temperature=1.5,
                                threshold=0.4, target_sensitivity=0.9)
    return save_classifier(tmp_path_factory.mktemp("model") / "tiny.ckpt", classifier)


def test_predict_in_process_continues_past_a_broken_file(folder, tiny_model, tmp_path):
    from mlcasebook.derm.data import CLASSES, read_image
    from mlcasebook.derm.predict import load_model, predict_images

    classifier = load_model(tiny_model)
    images = sorted((folder / "images").iterdir())[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(images[0].read_bytes()[:300])
    predictions = predict_images(classifier, [images[0], broken, images[1]], gradcam_dir=tmp_path / "cams")
    assert [p.ok for p in predictions] == [True, False, True]
    assert "broken.jpg" in predictions[1].error
    first = predictions[0]
    probabilities = [item["probability"] for item in first.top]
    assert len(first.top) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert {item["dx"] for item in first.top} <= set(CLASSES)
    # the risk is the malignant classes' share of the calibrated probabilities
    probs = classifier.predict_proba(read_image(images[0], 48)[None])
    assert first.malignant_risk == pytest.approx(float(classifier.malignant_risk(probs)[0]), abs=0.02)
    assert first.flagged == (first.malignant_risk >= 0.4)
    assert first.call == CLASSES[int(classifier.diagnose(probs)[0])] == first.top[0]["dx"]  # no prior shift
    assert Path(first.gradcam).is_file() and Path(first.gradcam).name == f"{images[0].stem}_gradcam.png"


def test_predict_names_the_shifted_call_when_it_differs_from_the_top_class(folder, tmp_path, capsys):
    import numpy as np
    import torch

    from mlcasebook.derm.data import CLASSES
    from mlcasebook.derm.models import DermClassifier, build_model, save_classifier

    torch.manual_seed(0)
    bias = np.where(np.array(CLASSES) == "df", 50.0, 0.0)  # a shift so strong that df is always the call
    path = save_classifier(tmp_path / "shifted.ckpt", DermClassifier(
        build_model("small-cnn", pretrained=False), "small-cnn", 48, threshold=0.4, class_bias=bias))
    image = sorted((folder / "images").iterdir())[0]
    code, stdout, stderr = run_main(capsys, "predict", image, "--model", path, "--json")
    assert code == 0, stderr
    prediction = json.loads(stdout)["predictions"][0]
    assert prediction["call"] == "df" and prediction["top"][0]["dx"] != "df"
    code, stdout, _ = run_main(capsys, "predict", image, "--model", path)
    assert "the model's call: df" in stdout


def test_missing_model_is_a_clear_error(tmp_path):
    from mlcasebook.derm.predict import load_model

    with pytest.raises(DataError, match="no trained skin-lesion model") as error:
        load_model(tmp_path / "none.ckpt")
    assert "mlcasebook derm train" in error.value.hint


def test_cli_predict_json_with_a_broken_file_exits_2(folder, tiny_model, tmp_path):
    images = sorted((folder / "images").iterdir())[:2]
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    result = run_cli("predict", images[0], not_an_image, images[1], "--model", tiny_model, "--json",
                     "--gradcam", tmp_path / "cams")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1 and "notes.txt: not an image file" in result.stderr
    output = json.loads(result.stdout)
    assert [("error" in p) for p in output["predictions"]] == [False, True, False]
    assert "not a medical device" in output["notice"].lower()
    assert len(list((tmp_path / "cams").glob("*_gradcam.png"))) == 2


def test_cli_predict_text(folder, tiny_model, capsys):
    code, stdout, _ = run_main(capsys, "predict", next((folder / "images").iterdir()), "--model", tiny_model,
                               "--no-tta")
    assert code == 0
    assert "malignant risk" in stdout and "operating threshold 40.0 %" in stdout
    assert "Not a medical device" in stdout


def test_cli_bad_input_exits_2_with_one_line(folder, tmp_path, capsys):
    code, _, stderr = run_main(capsys, "predict", next((folder / "images").iterdir()), "--model",
                               tmp_path / "none.ckpt")
    assert code == 2 and "no trained skin-lesion model" in stderr and "derm train" in stderr
    assert len(stderr.strip().splitlines()) == 1
    code, _, stderr = run_main(capsys, "train", "--arch", "resnet-152", "--out", tmp_path / "m.ckpt",
                               "--data-dir", folder)
    assert code == 2 and "unknown architecture 'resnet-152'" in stderr and "efficientnet-lite0" in stderr
    code, _, stderr = run_main(capsys, "data", "--data-dir", tmp_path / "nowhere")
    assert code == 2 and "does not exist" in stderr
    code, _, stderr = run_main(capsys, "evaluate", "--model", tmp_path / "none.ckpt", "--split", "test")
    assert code == 2 and "unknown split 'test'" in stderr


def test_cli_evaluate_and_data_on_a_folder(folder, tiny_model, tmp_path, capsys):
    out_json, report = tmp_path / "eval.json", tmp_path / "report"
    code, _, stderr = run_main(capsys, "evaluate", "--model", tiny_model, "--data-dir", folder, "--json", out_json,
                               "--report", report, "--no-tta", "--bootstrap", "200")
    assert code == 0, stderr
    numbers = json.loads(out_json.read_text())
    assert numbers["n_images"] == 21 and numbers["class_counts"] == [3] * 7
    assert 0.0 <= numbers["balanced_accuracy"] <= 1.0 and numbers["malignant"]["n_malignant"] == 9
    assert numbers["malignant"]["threshold"] == pytest.approx(0.4)
    assert len(numbers["probabilities"]) == 21 and numbers["settings"]["split"] == "all"
    page = (report / "derm_evaluation.html").read_text()
    assert "data:image/png" in page and "dermatologists" in page

    split_json = tmp_path / "split.json"
    code, stdout, stderr = run_main(capsys, "data", "--data-dir", folder, "--split-json", split_json)
    assert code == 0, stderr
    assert "validation" in stdout
    record = json.loads(split_json.read_text())
    assert record["images"] == 21 and sum(p["images"] for p in record["parts"].values()) == 21


@pytest.fixture(scope="module")
def larger_folder(tmp_path_factory) -> Path:
    """Twelve real images of every class: enough for a calibration split."""
    return copy_real_images(tmp_path_factory, 12)


def test_ensemble_is_the_mean_of_tempered_log_probabilities_and_serves_like_a_model(
        larger_folder, tiny_model, tmp_path, capsys):
    import numpy as np
    import torch

    from mlcasebook.derm.data import read_image
    from mlcasebook.derm.ensemble import DermEnsemble
    from mlcasebook.derm.models import DermClassifier, build_model, load_classifier, save_classifier

    torch.manual_seed(1)  # a second member at another input size, so images are resized per member
    second = save_classifier(tmp_path / "second.ckpt", DermClassifier(
        build_model("small-cnn", pretrained=False), "small-cnn", 32, temperature=0.7, threshold=0.3))
    ensemble_path = tmp_path / "ensemble.ckpt"
    code, stdout, stderr = run_main(capsys, "ensemble", tiny_model, second, "--data-dir", larger_folder,
                                    "--out", ensemble_path)
    assert code == 0, stderr
    assert "ensemble of 2" in stdout and "calibration images" in stdout and "diagnosis call: prior shift" in stdout
    ensemble = load_classifier(ensemble_path)
    assert isinstance(ensemble, DermEnsemble) and ensemble.image_size == 48 and ensemble.target_sensitivity == 0.9
    members = [load_classifier(tiny_model), load_classifier(second)]
    image = read_image(sorted((larger_folder / "images").iterdir())[0], 48)[None]
    mean_log_probs = np.mean([np.log(m.predict_proba(image)) for m in members], axis=0)
    expected = torch.softmax(torch.as_tensor(mean_log_probs) / ensemble.temperature, dim=1).numpy()
    np.testing.assert_allclose(ensemble.predict_proba(image), expected, rtol=1e-6, atol=1e-9)
    assert ensemble.temperature != 1.0  # fitted, not left at its default
    assert ensemble.class_bias is not None and len(ensemble.class_bias) == 7  # its own prior shift, kept in the file

    code, stdout, stderr = run_main(capsys, "predict", sorted((larger_folder / "images").iterdir())[0],
                                    "--model", ensemble_path, "--gradcam", tmp_path / "cams")
    assert code == 0, stderr
    assert "malignant risk" in stdout and len(list((tmp_path / "cams").glob("*_gradcam.png"))) == 1
    code, _, stderr = run_main(capsys, "evaluate", "--model", ensemble_path, "--data-dir", larger_folder,
                               "--split", "validation", "--json", tmp_path / "eval.json", "--bootstrap", "100")
    assert code == 0, stderr
    assert json.loads((tmp_path / "eval.json").read_text())["malignant"]["threshold"] == pytest.approx(
        ensemble.threshold)


def test_ensemble_bad_input_gets_one_clear_line(larger_folder, folder, tiny_model, tmp_path, capsys):
    code, _, stderr = run_main(capsys, "ensemble", tiny_model, tmp_path / "none.ckpt", "--data-dir", larger_folder)
    assert code == 2 and "no model file at" in stderr and "none.ckpt" in stderr
    code, _, stderr = run_main(capsys, "ensemble", tiny_model, "--data-dir", larger_folder,
                               "--out", tmp_path / "e.ckpt")
    assert code == 2 and "at least two models" in stderr
    # three images a class leave no calibration split to fit the threshold on
    code, _, stderr = run_main(capsys, "ensemble", tiny_model, tiny_model, "--data-dir", folder,
                               "--out", tmp_path / "e.ckpt")
    assert code == 2 and "calibration split" in stderr
