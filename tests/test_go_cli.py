"""The `mlcasebook go` commands: a match through the CLI, and bad input as one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

COMMAND = [sys.executable, "-m", "mlcasebook", "go"]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(COMMAND + list(args), input=stdin, capture_output=True, text=True, timeout=120,
                          env={"MLCASEBOOK_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def test_match_command_writes_sgf_and_json(tmp_path):
    result = run("match", "random:1", "random:2", "--games", "2", "--board", "5", "--komi", "0.5",
                 "--sgf-dir", str(tmp_path / "sgf"), "--json", str(tmp_path / "m.json"), "--note", "two randoms")
    assert result.returncode == 0, result.stderr
    assert "win rate" in result.stdout
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["games"] == 2 and summary["board"] == 5 and summary["note"] == "two randoms"
    # the JSON says how to reproduce it
    assert summary["command"].startswith("OMP_NUM_THREADS=1 mlcasebook go match random:1 random:2 --games 2 --board 5")
    assert len(list((tmp_path / "sgf").glob("*.sgf"))) == 2


@pytest.mark.parametrize(("args", "message"), [
    (("match", "random", "/nonexistent/engine", "--games", "1"), "cannot start engine"),
    (("match", "random", "ours,depth=2", "--games", "1"), "unknown option"),
    (("gtp", "--model", "/nonexistent.ckpt"), "checkpoint not found"),
    (("gtp", "--rollouts", "--model", "x.ckpt"), "--rollouts searches without a network"),
    (("train", "--run", "RUN"), "say how long to train"),
    (("train", "--run", "RUN", "--hours", "1", "--corpus-cpu-hours", "2"), "describe the SGF corpus"),
])
def test_bad_input_is_a_one_line_error(args, message, tmp_path):
    args = tuple(str(tmp_path / "run") if a == "RUN" else a for a in args)
    result = run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # nothing written for a refused command


def test_gtp_command_answers_on_stdin():
    result = run("gtp", "--random", stdin="1 name\n2 boardsize 5\n3 genmove b\n4 quit\n")
    assert result.returncode == 0
    lines = [line for line in result.stdout.splitlines() if line]
    assert lines[0] == "=1 mlcasebook-go" and lines[1] == "=2" and lines[2].startswith("=3 ")


def test_gtp_plays_the_shipped_network_by_default():
    """A fresh install plays with the 9x9 network in the package: no --model needed."""
    from mlcasebook.go.board import GoState, vertex_to_action
    from mlcasebook.go.net import SHIPPED_NET, load_net

    net, meta = load_net(SHIPPED_NET)
    assert meta["config"]["channels"] == net.config.channels
    assert SHIPPED_NET.stat().st_size < 5_000_000  # "a few MB at most"
    result = run("gtp", "--playouts", "16", stdin="1 boardsize 9\n2 play b E5\n3 genmove w\n4 quit\n")
    assert result.returncode == 0, result.stderr
    answer = [line for line in result.stdout.splitlines() if line.startswith("=3")][0].split()[1]
    state = GoState(9, 7.0)
    state.play(vertex_to_action("E5", 9))
    assert answer.lower() != "resign" and state.legal_mask()[vertex_to_action(answer, 9)]
