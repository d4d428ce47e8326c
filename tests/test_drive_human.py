"""Keyboard recording of human CarRacing laps: key mapping, labels, the no-screen error, file checks."""

from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import run_case_cli
from mlcasebook.core.errors import CasebookError
from mlcasebook.drive import human
from mlcasebook.drive.bc import _save_data
from mlcasebook.drive.pilotnet import SPEED_SCALE


def test_keys_map_to_carracing_actions():
    assert human.action_from_keys(False, False, False, False).tolist() == [0.0, 0.0, 0.0]
    assert human.action_from_keys(True, False, True, False).tolist() == [-1.0, 1.0, 0.0]
    right_and_brake = human.action_from_keys(False, True, False, True)
    assert right_and_brake[0] == 1.0 and right_and_brake[1] == 0.0 and right_and_brake[2] == pytest.approx(0.8)
    assert human.action_from_keys(True, True, False, False)[0] == 0.0  # opposite keys cancel


def test_target_speed_label_is_the_speed_half_a_second_later():
    speeds = np.arange(60, dtype=float)  # +1 per frame
    labels = human.human_labels(np.zeros(60), speeds, lookahead_s=0.5, fps=50)
    assert labels[0, 1] * SPEED_SCALE == pytest.approx(25.0)  # frame 25 is 0.5 s later
    assert labels[-1, 1] * SPEED_SCALE == pytest.approx(59.0)  # the end holds the last speed
    assert labels.shape == (60, 2)


def test_recording_without_a_screen_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(human, "has_screen", lambda: False)
    code, _, err = run_case_cli(capsys, "drive", "record-human", "--out", tmp_path / "laps.pt")
    assert code == 2 and "needs a screen" in err and "Traceback" not in err


def test_recorded_laps_are_checked_before_training(capsys, tmp_path):
    good = tmp_path / "laps.pt"
    _save_data(good, np.zeros((4, 96, 96, 3), np.uint8), np.zeros((4, 2), np.float32), [{"mode": "human"}])
    frames, labels, stats = human.load_human_data(good)
    assert frames.shape == (4, 96, 96, 3) and stats[0]["mode"] == "human"
    wrong = tmp_path / "wrong.pt"
    _save_data(wrong, np.zeros((4, 64, 64, 3), np.uint8), np.zeros((4, 2), np.float32), [])
    with pytest.raises(CasebookError, match="96x96"):
        human.load_human_data(wrong)
    code, _, err = run_case_cli(capsys, "drive", "train", "--out", tmp_path / "p.pt", "--human", tmp_path / "none.pt")
    assert code == 2 and "no recorded laps" in err
