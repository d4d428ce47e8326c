import pytest

from mlcasebook.core.tracking import tracked_run


def test_disabled_tracker_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_TRACKING_DIR", str(tmp_path))
    with tracked_run("x", "y", enabled=False) as run:
        run.params({"a": 1})
        run.metrics({"m": 1.0})
        assert not run.enabled
    assert list(tmp_path.iterdir()) == []


def test_mlflow_run_logs_params_metrics_and_artifacts(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLCASEBOOK_TRACKING_DIR", str(tmp_path))
    artifact = tmp_path / "note.txt"
    artifact.write_text("hello")
    with tracked_run("test-exp", "run-1") as run:
        run.params({"k": 10, "model": "ease"})
        run.metrics({"ndcg": 0.3, "label": "not numeric, skipped"})
        run.artifact(artifact)
        run_id = run.run_id
    got = mlflow.get_run(run_id)
    assert got.data.params == {"k": "10", "model": "ease"}
    assert got.data.metrics == {"ndcg": 0.3}
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run_id)]
    assert artifacts == ["note.txt"]
