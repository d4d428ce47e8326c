"""Checkpoints, downloads, data folders, claims and reports."""

import hashlib
import http.server
import json
import threading
from functools import partial

import numpy as np
import pandas as pd
import pytest

from mlcasebook.core import sources
from mlcasebook.core.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from mlcasebook.core.claims import claims_for
from mlcasebook.core.errors import CasebookError, DataError
from mlcasebook.core.report import Report, write_json


def test_checkpoint_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "m.ckpt", {"w": np.arange(6.0).reshape(2, 3)}, {"rank": 3, "name": "x"})
    arrays, meta = load_checkpoint(path)
    assert np.array_equal(arrays["w"], np.arange(6.0).reshape(2, 3))
    assert meta == {"rank": 3, "name": "x"}
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]  # no temp file left behind


def test_checkpoint_refuses_pickles_and_garbage(tmp_path):
    import pickle

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"__meta_json__": "{}", "x": object()}))
    with pytest.raises(CasebookError):
        load_checkpoint(evil)
    with pytest.raises(CasebookError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_verifies_checksum_and_caches(file_server, tmp_path, monkeypatch):
    root, url = file_server
    payload = b"user\titem\n" * 1000
    (root / "d.tsv").write_bytes(payload)
    cache = tmp_path / "cache"
    good = sources.Download(f"{url}/d.tsv", "sha256:" + hashlib.sha256(payload).hexdigest(), "d.tsv")
    path = sources.fetch(good, cache, progress=False)
    assert path.read_bytes() == payload
    (root / "d.tsv").unlink()  # cached copy is used, no second request
    assert sources.fetch(good, cache, progress=False) == path
    bad = sources.Download(f"{url}/e.tsv", "md5:" + "0" * 32, "e.tsv")
    (root / "e.tsv").write_bytes(b"tampered")
    with pytest.raises(DataError, match="checksum mismatch"):
        sources.fetch(bad, cache, progress=False)
    assert not (cache / "e.tsv").exists() and not (cache / "e.tsv.part").exists()


def test_fetch_reports_unreachable_host(tmp_path):
    missing = sources.Download("http://127.0.0.1:9/none.zip", "md5:00", "none.zip")
    with pytest.raises(DataError, match="could not download"):
        sources.fetch(missing, tmp_path, progress=False)


def test_data_root_prefers_explicit_folder_then_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_DATA", str(tmp_path))
    assert sources.data_root() == tmp_path
    assert sources.data_root(tmp_path) == tmp_path
    with pytest.raises(DataError, match="does not exist"):
        sources.data_root(tmp_path / "nope")
    monkeypatch.setenv("MLCASEBOOK_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataError):
        sources.data_root()


def test_packaged_file_errors_name_the_package():
    with pytest.raises(DataError, match="pip install no-such-pkg"):
        sources.packaged_file("no_such_pkg", "x.csv")
    assert sources.packaged_file("mlcasebook", "core", "claims.csv").is_file()


def test_claims_are_data():
    claims = claims_for("recsys")
    assert claims["rules_accuracy"].value == 60 and claims["deep_accuracy"].value == 85


def test_report_renders_tables_figures_and_claims(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    report = Report("Recsys <quick>", case="recsys")
    report.table(pd.DataFrame({"model": ["a<b"], "ndcg": [0.12345]}), "ranking").figure(fig, "a plot")
    report.claims_table({"rules_accuracy": ("31 %", "HR@10")})
    page = report.write(tmp_path / "r.html").read_text()
    assert "Recsys &lt;quick&gt;" in page and "a&lt;b" in page and "0.1235" in page
    assert "data:image/png;base64," in page and "HR@10" in page and "not measured" in page
    write_json(tmp_path / "r.json", {"x": np.float32(0.5), "n": np.int64(3)})
    assert json.loads((tmp_path / "r.json").read_text()) == {"n": 3, "x": 0.5}
