"""Derm models and training: shapes, the cached-trunk path, a real training step, resume, save/load."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from mlcasebook.core.checkpoint import save_checkpoint
from mlcasebook.core.errors import CasebookError
from mlcasebook.core.tracking import Tracker
from mlcasebook.derm.data import CLASSES, MALIGNANT_MASK, read_image
from mlcasebook.derm.evaluate import sensitivity_specificity, softmax
from mlcasebook.derm.models import (
    CACHED_CUT,
    DermClassifier,
    build_model,
    dihedral,
    load_classifier,
    save_classifier,
)
from mlcasebook.derm.train import (
    augment,
    calibrate,
    draw_jitter,
    epoch_order,
    fit_epochs,
    make_config,
    same_config,
    train_classifier,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000"
SIZE = 96  # small inputs keep the Lite forward passes of these tests under a second


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def real_images() -> tuple[np.ndarray, np.ndarray]:
    """16 real HAM10000 images (at least two of every class) at 96 px, with labels."""
    import pandas as pd

    if not (SHARED / "labels.csv").is_file():
        pytest.skip(f"shared HAM10000 copy not found at {SHARED}")
    rows = pd.read_csv(SHARED / "labels.csv").groupby("dx", sort=True).head(3).head(16)
    images = np.stack([read_image(SHARED / "images" / f"{image_id}.jpg", SIZE) for image_id in rows["image_id"]])
    labels = np.array([CLASSES.index(dx) for dx in rows["dx"]], dtype=np.int64)
    return images, labels


def pixels_of(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float()


def test_build_model_shapes_and_gradcam_layer():
    torch.manual_seed(0)
    x = torch.rand(2, 3, SIZE, SIZE) * 255
    for arch, size in (("efficientnet-lite0", SIZE), ("frozen-lr", SIZE), ("small-cnn", 64)):
        model = build_model(arch, image_size=size, pretrained=False).eval()
        inputs = torch.nn.functional.interpolate(x, size=(size, size))
        with torch.no_grad():
            assert model(inputs).shape == (2, len(CLASSES))
        classifier = DermClassifier(model, arch, size)
        seen: list[torch.Size] = []
        handle = classifier.gradcam_layer.register_forward_hook(
            lambda _m, _i, out, seen=seen: seen.append(out.shape))
        classifier.logits(inputs.permute(0, 2, 3, 1).to(torch.uint8))
        handle.remove()
        assert len(seen) == 1 and seen[0][0] == 2 and len(seen[0]) == 4  # one NCHW activation map
    with pytest.raises(CasebookError, match="unknown architecture"):
        build_model("resnet-152")


def test_cached_trunk_path_equals_the_full_network(real_images):
    """Training on cached activations is only valid if trunk + rest is exactly the network."""
    images, _ = real_images
    model = build_model("efficientnet-lite0", image_size=SIZE, cut=CACHED_CUT).eval()
    with torch.no_grad():
        full = model(pixels_of(images[:4]))
        split = model.from_trunk(model.trunk(pixels_of(images[:4])))
    torch.testing.assert_close(full, split)


def test_dihedral_elements_are_distinct_symmetries():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    views = [dihedral(x, element) for element in range(8)]
    assert torch.equal(views[0], x)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    for v in views:  # a permutation of the pixels: same values, same shape
        assert torch.equal(v.flatten().sort().values, x.flatten().sort().values)


def test_augment_keeps_shape_and_range(real_images):
    images, _ = real_images
    pixels = pixels_of(images[:6])
    out = augment(pixels, np.arange(6) % 8, draw_jitter(np.random.default_rng(0), 6))
    assert out.shape == pixels.shape and float(out.min()) >= 0 and float(out.max()) <= 255
    assert not torch.allclose(out, pixels)
    # No jitter (zero rotation, zoom 1, no shift, unit colour factors) and element 0: identity.
    neutral = np.tile([0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0], (6, 1))
    torch.testing.assert_close(augment(pixels, np.zeros(6, dtype=int), neutral), pixels, atol=0.5, rtol=0)


def test_balanced_sampling_evens_out_classes():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    counts = np.bincount(labels[epoch_order(labels, "sampling", np.random.default_rng(0))], minlength=3)
    assert counts.sum() == 1000 and counts.min() > 250  # about a third each, not 90 / 9 / 1 %
    order = epoch_order(labels, "weighted", np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(1000))


def _tiny_setup(real_images):
    images, labels = real_images
    torch.manual_seed(0)
    model = build_model("efficientnet-lite0", image_size=SIZE, cut=CACHED_CUT).eval()
    with torch.no_grad():
        activations = model.trunk(pixels_of(images))
    return model, activations, labels


def _fit(model, activations, labels, config, state_file=None, fail_at_epoch=None):
    calls = {"epoch_inputs": 0}

    def batch_inputs(rows, rng):
        calls["epoch_inputs"] += 1
        if fail_at_epoch is not None and calls["epoch_inputs"] > fail_at_epoch * 2:
            raise KeyboardInterrupt  # the user presses Ctrl-C during this epoch
        return activations[rows]

    return fit_epochs(model, model.trainable_parameters(), labels, config, batch_inputs, model.from_trunk,
                      lambda: (model.from_trunk(activations).double().numpy(), labels),
                      state_file, Tracker(), progress=False)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_two_batch_training_step_lowers_the_loss(real_images, precision):
    model, activations, labels = _tiny_setup(real_images)
    # 16 images, batches of 8: each epoch is two optimiser steps.
    config = make_config("efficientnet-lite0", epochs=3, batch_size=8, lr=1e-3, image_size=SIZE, imbalance="weighted",
                         cut=CACHED_CUT, precision=precision)
    loss = torch.nn.functional.cross_entropy
    with torch.no_grad():
        before = float(loss(model.eval().from_trunk(activations), torch.from_numpy(labels)))
    record = _fit(model, activations, labels, config)
    with torch.no_grad():
        after = float(loss(model.eval().from_trunk(activations), torch.from_numpy(labels)))
    assert record["epochs_done"] == 3 and len(record["history"]) == 3
    assert after < before - 0.05, (before, after)


def test_resume_continues_at_the_right_epoch_with_the_same_state(real_images, tmp_path):
    config = make_config("efficientnet-lite0", epochs=3, batch_size=8, image_size=SIZE, imbalance="sampling",
                         cut=CACHED_CUT)
    reference_model, activations, labels = _tiny_setup(real_images)
    reference = _fit(reference_model, activations, labels, config)

    state_file = tmp_path / "model.pt.resume"
    interrupted_model, _, _ = _tiny_setup(real_images)
    with pytest.raises(KeyboardInterrupt):
        _fit(interrupted_model, activations, labels, config, state_file, fail_at_epoch=2)
    resumed_model, _, _ = _tiny_setup(real_images)  # a fresh process: weights from scratch
    resumed = _fit(resumed_model, activations, labels, config, state_file)

    assert [e["epoch"] for e in resumed["history"]] == [1, 2, 3]
    assert resumed["history"][0]["train_loss"] == pytest.approx(reference["history"][0]["train_loss"])
    assert resumed["history"][2]["train_loss"] == pytest.approx(reference["history"][2]["train_loss"], rel=1e-5)
    for (name, expected), actual in zip(reference_model.state_dict().items(), resumed_model.state_dict().values(),
                                        strict=True):
        torch.testing.assert_close(actual, expected, msg=name, atol=1e-5, rtol=1e-4)

    other = make_config("efficientnet-lite0", epochs=3, batch_size=8, image_size=SIZE, lr=5e-4, cut=CACHED_CUT)
    with pytest.raises(CasebookError, match="other settings"):
        _fit(resumed_model, activations, labels, other, state_file)


def test_save_load_round_trip_gives_identical_probabilities(real_images, tmp_path):
    images, _ = real_images
    torch.manual_seed(1)
    for arch, size in (("efficientnet-lite0", SIZE), ("small-cnn", 64)):
        model = build_model(arch, image_size=size, pretrained=False).eval()
        classifier = DermClassifier(model, arch, size, temperature=1.7, threshold=0.31, target_sensitivity=0.95,
                                    info={"note": "test"}, class_bias=np.linspace(0, 1.2, len(CLASSES)))
        path = save_classifier(tmp_path / f"{arch}.pt", classifier)
        loaded = load_classifier(path)
        assert (loaded.arch, loaded.image_size, loaded.classes) == (arch, size, CLASSES)
        assert (loaded.temperature, loaded.threshold, loaded.target_sensitivity) == (1.7, 0.31, 0.95)
        expected = classifier.predict_proba(images[:5])
        np.testing.assert_array_equal(loaded.predict_proba(images[:5]), expected)
        np.testing.assert_allclose(expected.sum(axis=1), 1.0)
        np.testing.assert_allclose(loaded.malignant_risk(expected), expected[:, MALIGNANT_MASK].sum(axis=1))
        np.testing.assert_array_equal(loaded.class_bias, classifier.class_bias)
        np.testing.assert_array_equal(loaded.diagnose(expected), (np.log(expected) + classifier.class_bias).argmax(1))


def test_load_refuses_foreign_checkpoints(tmp_path):
    path = save_checkpoint(tmp_path / "other.pt", {"w": np.zeros(3)}, {"format": "something-else"})
    with pytest.raises(CasebookError, match="not a derm classifier"):
        load_classifier(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CasebookError):
        load_classifier(tmp_path / "junk.pt")


def test_calibration_reaches_the_target_sensitivity_on_its_own_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(CLASSES), size=400)
    logits = rng.normal(size=(400, len(CLASSES))) * 3 + 4 * np.eye(len(CLASSES))[labels]
    fitted = calibrate(logits, labels, target_sensitivity=0.9)
    probs = softmax(logits, fitted["temperature"])
    sensitivity, _ = sensitivity_specificity(probs[:, MALIGNANT_MASK].sum(1), MALIGNANT_MASK[labels],
                                             fitted["threshold"])
    assert sensitivity >= 0.9
    assert fitted["temperature"] > 1.0  # logits this noisy are overconfident: T spreads them
    assert fitted["calibration"]["ece_after"] < fitted["calibration"]["ece_before"]


def test_train_classifier_end_to_end_on_a_small_subset(tmp_path, monkeypatch):
    if not (SHARED / "labels.csv").is_file():
        pytest.skip(f"shared HAM10000 copy not found at {SHARED}")
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    out = train_classifier(SHARED, arch="small-cnn", out=tmp_path / "small.pt", epochs=1, max_images=64,
                           track=False, progress=False)
    classifier = load_classifier(out)
    assert classifier.info["n_train"] == 64 and classifier.info["epochs_done"] == 1
    assert 0.0 < classifier.threshold < 1.0 and classifier.temperature > 0
    # the prior shift is fitted on the calibration split and stored with the model
    assert classifier.class_bias is not None and classifier.info["prior_shift"] >= 0
    assert classifier.class_bias[CLASSES.index("nv")] == min(classifier.class_bias)  # the commonest class gets least
    # the shared labels carry age, sex and site: the clinical model comes with it, saved and loaded
    assert classifier.clinical is not None and classifier.clinical.info["n_train"] == 64
    assert not (tmp_path / "small.pt.resume").exists()  # the resume state goes once the model is saved
    assert train_classifier(SHARED, arch="small-cnn", out=out, epochs=1, max_images=64, track=False,
                            progress=False) == out  # same command again: already done, nothing retrained


def test_lite_defaults_end_to_end_and_cached_fine_tuning_its_own():
    end_to_end = make_config("efficientnet-lite0")
    assert (end_to_end.cut, end_to_end.views) == (0, 0)
    cached = make_config("efficientnet-lite0", cut=CACHED_CUT)
    assert cached.cut == CACHED_CUT and cached.views >= 1 and cached.image_size == 224
    assert make_config("efficientnet-lite0", cut=CACHED_CUT, image_size=160).image_size == 160  # given wins
    assert make_config("frozen-lr").cut == CACHED_CUT  # reads the cached trunk's pooled features
    with pytest.raises(CasebookError, match="cut must lie"):
        make_config("efficientnet-lite0", cut=16)
    with pytest.raises(CasebookError, match="at least one view"):
        make_config("efficientnet-lite0", cut=CACHED_CUT, views=0)
    with pytest.raises(CasebookError, match="unknown precision"):
        make_config("efficientnet-lite0", precision="float16")


def test_a_config_field_added_later_counts_at_its_default():
    """Model files written before ``precision`` existed still count as finished float32 runs."""
    config = make_config("small-cnn")
    older = {k: v for k, v in asdict(config).items() if k != "precision"}
    assert same_config(older, config)
    assert not same_config(older, make_config("small-cnn", precision="bfloat16"))
    assert not same_config({**older, "epochs": 99}, config) and not same_config(None, config)


def test_end_to_end_lite_training_updates_the_whole_network(tmp_path, monkeypatch):
    """cut 0 fine-tunes from pixels: the ImageNet stem itself moves, and the saved file
    rebuilds the same network (cut 0) with the same probabilities."""
    if not (SHARED / "labels.csv").is_file():
        pytest.skip(f"shared HAM10000 copy not found at {SHARED}")
    monkeypatch.setenv("MLCASEBOOK_CACHE", str(tmp_path / "cache"))
    out = train_classifier(SHARED, arch="efficientnet-lite0", out=tmp_path / "lite.pt", epochs=1, max_images=32,
                           image_size=64, batch_size=16, track=False, progress=False)
    classifier = load_classifier(out)
    assert classifier.module.cut == 0 and classifier.info["epochs_done"] == 1
    imagenet = build_model("efficientnet-lite0", image_size=64)
    stem_before = imagenet.stem[0].weight
    stem_after = classifier.module.stem[0].weight
    assert not torch.allclose(stem_before, stem_after)
    head_before, head_after = imagenet.blocks[15].state_dict(), classifier.module.blocks[15].state_dict()
    assert any(not torch.allclose(head_before[k].float(), head_after[k].float()) for k in head_before)
    images = np.stack([read_image(path, 64) for path in sorted((SHARED / "images").glob("*.jpg"))[:3]])
    np.testing.assert_array_equal(load_classifier(out).predict_proba(images), classifier.predict_proba(images))
