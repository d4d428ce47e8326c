"""`mlcasebook drive` as a user meets it: recordings that read back, clear errors, the tour's smoke mode."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import pytest

from cli_helpers import run_case_cli
from mlcasebook.drive.tour import SPEC


def run_main(capsys, *args) -> tuple[int, str, str]:
    return run_case_cli(capsys, "drive", *args)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_NO_PROGRESS", "1")


@pytest.mark.parametrize("args, message", [
    (["play", "--agent", "chauffeur"], "unknown agent"),
    (["play", "--env", "mars"], "unknown environment"),
    (["play", "--agent", "pilotnet"], "needs a trained model"),
    (["play", "--agent", "pilotnet", "--model", "missing.pt"], "model not found"),
    (["play", "--record", "lap.avi"], "unknown video format"),
    (["evaluate", "--env", "highway-fast", "--autonomy"], "autonomy is measured on carracing"),
    (["train", "--env", "highway", "--out", "x.pt"], "carracing only"),
])
def test_bad_arguments_exit_2_with_a_hint(capsys, args, message):
    code, _, err = run_main(capsys, *args)
    assert code == 2
    assert message in err and "hint:" in err
    assert "Traceback" not in err


def test_a_checkpoint_that_is_not_pilotnet_is_refused(capsys, tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    code, _, err = run_main(capsys, "play", "--agent", "pilotnet", "--model", bogus)
    assert code == 2 and "not a valid mlcasebook checkpoint" in err


@pytest.mark.parametrize("suffix, env, steps", [(".gif", "carracing", 12), (".mp4", "highway-fast", 3)])
def test_play_records_a_readable_video(capsys, tmp_path, suffix, env, steps):
    path = tmp_path / f"episode{suffix}"
    code, out, err = run_main(capsys, "play", "--agent", "expert", "--env", env, "--steps", steps,
                              "--record", path)
    assert code == 0, err
    if suffix == ".gif":
        frames = imageio.mimread(path)
    else:  # the ffmpeg reader: count, then read (iterating it can run past the end)
        reader = imageio.get_reader(path)
        frames = [reader.get_data(i) for i in range(reader.count_frames())]
        reader.close()
    assert 1 <= len(frames) <= steps
    height, width = frames[0].shape[:2]
    # the frame plus the steering strip (mp4 pads to multiples of 16)
    assert height >= (400 if env == "carracing" else 150) + 28 and width >= 600
    assert "return" in out


def test_evaluate_writes_json(capsys, tmp_path):
    path = tmp_path / "random.json"
    code, out, err = run_main(capsys, "evaluate", "--agent", "random", "--episodes", "2", "--steps", "20",
                              "--json", path)
    assert code == 0, err
    summary = json.loads(path.read_text())
    assert summary["seeds"] == [100_000, 100_001]
    assert len(summary["per_episode"]) == 2 and all(row["steps"] == 20 for row in summary["per_episode"])
    assert "drive evaluate --agent random" in summary["command"]


def test_tour_smoke_mode(tour_case):
    out, outcome = tour_case(SPEC.name)  # the session's `mlcasebook tour --smoke` (conftest)
    assert (out / outcome["page"]).is_file()
    numbers = outcome["numbers"]
    assert numbers["expert"]["steps"] == numbers["pilotnet"]["steps"] == numbers["eval_steps"]
    assert "PilotNet return" in outcome["headline"]
