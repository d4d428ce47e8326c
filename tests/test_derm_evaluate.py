"""Derm metrics against values worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlcasebook.derm.evaluate import (
    balanced_accuracy,
    bootstrap_sensitivity_specificity,
    calibration_bins,
    chapter_points,
    choose_threshold,
    confusion,
    decide,
    evaluate_probabilities,
    fit_prior_shift,
    fit_temperature,
    macro_auc,
    malignant_risk,
    per_class_recall,
    sensitivity_specificity,
    softmax,
    write_report_page,
)


def test_confusion_recall_and_balanced_accuracy_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    matrix = confusion(labels, predicted)
    assert matrix[:3, :3].tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]] and matrix.sum() == 6
    recall = per_class_recall(labels, predicted)
    np.testing.assert_allclose(recall[:3], [1 / 2, 2 / 3, 1.0])
    assert np.isnan(recall[3:]).all()  # absent classes do not count
    assert balanced_accuracy(labels, predicted) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)


def test_macro_auc_by_hand():
    labels = np.array([0, 0, 1, 2])
    probs = np.full((4, 7), 0.01)
    probs[:, 0] = [0.8, 0.6, 0.7, 0.1]   # positives 0.8, 0.6 vs negatives 0.7, 0.1: 3 of 4 pairs right
    probs[:, 1] = [0.1, 0.2, 0.9, 0.3]   # the one positive beats all: 1.0
    probs[:, 2] = [0.5, 0.1, 0.2, 0.3]   # positive 0.3 beats 0.1 and 0.2, loses to 0.5: 2/3
    mean, per_class = macro_auc(probs, labels)
    assert per_class[:3] == pytest.approx([0.75, 1.0, 2 / 3])
    assert per_class[3:] == [None] * 4
    assert mean == pytest.approx((0.75 + 1.0 + 2 / 3) / 3)


def test_malignant_risk_sums_akiec_bcc_mel():
    probs = np.array([[0.1, 0.2, 0.05, 0.05, 0.3, 0.25, 0.05]])
    assert malignant_risk(probs) == pytest.approx([0.6])


def test_threshold_for_a_target_sensitivity():
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.95, 0.5, 0.1])
    malignant = np.array([1, 1, 1, 1, 0, 0, 0], dtype=bool)
    assert choose_threshold(scores, malignant, 0.75) == 0.7      # 3 of 4 positives needed
    assert choose_threshold(scores, malignant, 0.76) == 0.2      # all 4 needed
    assert choose_threshold(scores, malignant, 1.0) == 0.2
    assert sensitivity_specificity(scores, malignant, 0.7) == (0.75, 2 / 3)
    assert sensitivity_specificity(scores, malignant, 0.2) == (1.0, 1 / 3)  # 0.95 and 0.5 flagged
    with pytest.raises(ValueError):
        choose_threshold(scores, np.zeros(7, dtype=bool), 0.9)


def test_bootstrap_intervals_bracket_the_estimate_and_are_seeded():
    rng = np.random.default_rng(0)
    malignant = rng.random(400) < 0.3
    scores = np.where(malignant, rng.normal(1.0, 1.0, 400), rng.normal(-1.0, 1.0, 400))
    sens, spec = sensitivity_specificity(scores, malignant, 0.0)
    ci = bootstrap_sensitivity_specificity(scores, malignant, 0.0, n_boot=1000, seed=3)
    assert ci["sensitivity"][0] < sens < ci["sensitivity"][1]
    assert ci["specificity"][0] < spec < ci["specificity"][1]
    # binomial standard error sqrt(p(1-p)/n): the 95 % interval is about 4 of them wide
    n_pos = malignant.sum()
    expected_width = 2 * 1.96 * math.sqrt(sens * (1 - sens) / n_pos)
    assert ci["sensitivity"][1] - ci["sensitivity"][0] == pytest.approx(expected_width, rel=0.25)
    assert ci == bootstrap_sensitivity_specificity(scores, malignant, 0.0, n_boot=1000, seed=3)


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.65, 0.35], [0.65, 0.35]])
    labels = np.array([0, 1, 0, 0])
    bins = calibration_bins(probs, labels)
    # bin of 0.9: accuracy 1/2, gap 0.4; bin of 0.65: accuracy 1, gap 0.35; two images each
    assert bins["ece"] == pytest.approx((2 * 0.4 + 2 * 0.35) / 4)
    assert sum(bins["count"]) == 4 and sorted(c for c in bins["count"] if c) == [2, 2]


def test_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 7))
    true_temperature = 2.5
    probs = softmax(logits, true_temperature)
    labels = (probs.cumsum(axis=1) > rng.random((4000, 1))).argmax(axis=1)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.1)

    def nll(t):
        return -np.log(softmax(logits, t)[np.arange(4000), labels]).mean()

    assert nll(fitted) <= min(nll(1.0), nll(fitted * 1.2), nll(fitted / 1.2))


def test_evaluate_probabilities_is_consistent_and_json_ready(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 300)
    logits = rng.normal(size=(300, 7))
    logits[np.arange(300), labels] += 2.0
    probs = softmax(logits)
    result = evaluate_probabilities(probs, labels, threshold=0.4, target_sensitivity=0.9, n_boot=200)
    json.dumps(result)
    assert result["balanced_accuracy"] == pytest.approx(balanced_accuracy(labels, probs.argmax(axis=1)))
    malignant = np.isin(labels, [0, 1, 4])
    assert result["malignant"]["n_malignant"] == malignant.sum()
    sens, spec = sensitivity_specificity(malignant_risk(probs), malignant, 0.4)
    assert (result["malignant"]["sensitivity"], result["malignant"]["specificity"]) == (sens, spec)
    assert np.array(result["confusion"]).sum() == 300
    page = write_report_page(result, tmp_path, "test page", "synthetic data").read_text()
    assert "dermatologists" in page and "data:image/png" in page and "Dermatologists&#x27; sensitivity" in page


def test_decide_divides_by_the_prior_at_full_shift():
    probs = np.array([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4]])
    prior = np.array([0.8, 0.1, 0.1])
    assert decide(probs).tolist() == [0, 0]
    # shift 1: 0.6/0.8 = 0.75 < 0.3/0.1 = 3 and 0.5/0.8 < 0.4/0.1: the rare classes win
    assert decide(probs, -np.log(prior)).tolist() == [1, 2]
    assert decide(probs, np.zeros(3)).tolist() == decide(probs).tolist()


def test_prior_shift_is_chosen_for_balanced_accuracy_and_left_at_zero_when_it_cannot_help():
    # Class 0 is common, the others rare, and the model under-calls them by a constant factor.
    rng = np.random.default_rng(3)
    prior = np.array([0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    labels = rng.choice(7, size=2000, p=prior)
    logits = rng.normal(size=(2000, 7))
    logits[np.arange(2000), labels] += 2.5
    logits[:, 0] += 2.0  # the bias the shift should undo
    probs = softmax(logits)
    fitted = fit_prior_shift(probs, labels, prior)
    assert fitted["prior_shift"] > 0.5
    shifted = balanced_accuracy(labels, decide(probs, fitted["class_bias"]))
    assert shifted == max(fitted["balanced_accuracy_by_shift"].values()) == fitted["balanced_accuracy"]
    assert shifted > balanced_accuracy(labels, probs.argmax(1)) + 0.1
    np.testing.assert_allclose(fitted["class_bias"], -fitted["prior_shift"] * np.log(prior))
    # Perfect separation: every shift ties at 1.0, and the middle of the tied range is kept.
    perfect = np.eye(7)[labels] * 0.93 + 0.01
    assert fit_prior_shift(perfect, labels, prior)["prior_shift"] == pytest.approx(0.75)
    # evaluate_probabilities reports the shifted call and the plain top class side by side
    result = evaluate_probabilities(probs, labels, 0.5, class_bias=fitted["class_bias"], n_boot=10)
    assert result["balanced_accuracy"] == pytest.approx(shifted)
    assert result["balanced_accuracy_top_class"] == pytest.approx(balanced_accuracy(labels, probs.argmax(1)))


def test_chapter_points_come_from_the_claims_file():
    points = chapter_points()
    assert points["CNN (Esteva et al. 2017)"] == pytest.approx((0.95, 0.88))
    assert points["dermatologists"] == pytest.approx((0.89, 0.83))


def test_grad_cam_points_at_the_evidence():
    torch = pytest.importorskip("torch")
    from mlcasebook.derm.gradcam import grad_cam, overlay

    # a net whose class-0 logit is the mean brightness its (positive) filters see: the evidence
    # for class 0 is the bright patch and nothing else
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.fill_(0.1)
        net[0].bias.fill_(0.0)
        net[4].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]))
    image = torch.zeros(1, 3, 32, 32)
    image[:, :, 20:28, 4:12] = 1.0
    heatmap, target = grad_cam(net, net[1], image)
    assert target == 0 and heatmap.shape == (32, 32) and heatmap.max() == pytest.approx(1.0)
    inside = heatmap[20:28, 4:12].mean()
    outside = np.delete(heatmap.reshape(-1), (np.arange(20, 28)[:, None] * 32 + np.arange(4, 12)).ravel()).mean()
    assert inside > 10 * outside
    picture = overlay(np.zeros((32, 32, 3), dtype=np.uint8), heatmap)
    assert picture.size == (32, 32) and np.asarray(picture)[24, 8].any() and not np.asarray(picture)[2, 30].any()


def test_gradcam_cases_pick_hits_misses_and_false_alarms():
    from mlcasebook.derm.evaluate import gradcam_cases

    classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]

    def probs(risk):  # all malignant mass on mel, the rest on nv
        return [0, 0, 0, 0, risk, 1 - risk, 0]

    risks = [0.9, 0.2, 0.6, 0.1, 0.7, 0.05]
    result = {"classes": classes, "probabilities": [probs(r) for r in risks],
              "true_dx": ["mel", "mel", "nv", "nv", "bcc", "akiec"], "malignant": {"threshold": 0.5}}
    cases = gradcam_cases(result, per_kind=2)
    assert cases == {"detected malignant": [0, 4], "missed malignant": [5, 1], "false alarm": [2]}
