"""KataGo's analysis-engine protocol (what KaTrain speaks): a real pipe, the answer's shape and
perspective, and an error (never a crash) for every bad query."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlcasebook.go.analysis import AnalysisEngine
from mlcasebook.go.net import GoNet, NetConfig, NetEvaluator

TINY = NetConfig(channels=16, blocks=2, history=2, head_channels=8)


def engine() -> AnalysisEngine:
    return AnalysisEngine(NetEvaluator(GoNet(TINY), symmetry="none"), visits=16)


def query(**fields) -> str:
    return json.dumps({"id": "q", "boardXSize": 7, "boardYSize": 7, "komi": 7.0, **fields})


def test_an_answer_has_what_katrain_reads():
    stones = [["B", "D4"], ["W", "C3"]]
    replies = engine().handle(query(initialStones=stones, moves=[["B", "E5"]], maxVisits=24, includePolicy=True,
                                    includeOwnership=True, rules="tromp-taylor"))
    assert len(replies) == 1  # area rules: no warning
    answer = replies[0]
    assert answer["id"] == "q" and answer["turnNumber"] == 1 and answer["rootInfo"]["currentPlayer"] == "W"
    assert answer["rootInfo"]["visits"] == 24
    infos = answer["moveInfos"]
    assert [info["order"] for info in infos] == list(range(len(infos)))
    assert [info["visits"] for info in infos] == sorted((info["visits"] for info in infos), reverse=True)
    assert sum(info["visits"] for info in infos) <= 24
    for info in infos:
        assert 0 <= info["winrate"] <= 1 and info["pv"][0] == info["move"]
        assert {"scoreLead", "prior", "utility", "lcb"} <= info.keys()
        assert info["move"] not in ("D4", "C3", "E5")  # occupied points are never candidates
    policy = answer["policy"]
    assert len(policy) == 7 * 7 + 1 and abs(sum(p for p in policy if p >= 0) - 1) < 1e-6
    d4 = (7 - 4) * 7 + 3  # KataGo's order: row by row from the top-left
    assert policy[d4] == -1
    assert len(answer["ownership"]) == 49 and all(-1 <= v <= 1 for v in answer["ownership"])


def test_winrates_are_black_s_unless_the_query_asks_for_the_side_to_move():
    moves = [["B", "D4"]]  # White to move
    same = engine()  # one network for both queries (a fresh one is initialised at random)
    black = same.handle(query(moves=moves, maxVisits=8))[0]
    side = same.handle(query(moves=moves, maxVisits=8,
                                 overrideSettings={"reportAnalysisWinratesAs": "SIDETOMOVE"}))[0]
    assert black["rootInfo"]["winrate"] == pytest.approx(1 - side["rootInfo"]["winrate"])
    assert black["rootInfo"]["scoreLead"] == pytest.approx(-side["rootInfo"]["scoreLead"])


def test_a_position_after_two_passes_is_still_analysed_and_play_may_go_on():
    passes = [["B", "D4"], ["W", "pass"], ["B", "pass"]]
    assert engine().handle(query(moves=passes, maxVisits=4))[0]["moveInfos"]
    assert engine().handle(query(moves=[*passes, ["W", "C3"]], maxVisits=4))[0]["rootInfo"]["currentPlayer"] == "B"


def test_the_root_score_is_the_visit_weighted_score_of_the_searched_moves():
    answer = engine().handle(query(maxVisits=16))[0]
    infos = answer["moveInfos"]
    mean = sum(i["visits"] * i["scoreLead"] for i in infos) / sum(i["visits"] for i in infos)
    assert answer["rootInfo"]["scoreLead"] == pytest.approx(mean)


def test_every_turn_asked_for_is_analysed_and_other_rules_get_a_warning():
    replies = engine().handle(query(moves=[["B", "D4"], ["W", "pass"]], analyzeTurns=[0, 2], rules="japanese",
                                    maxVisits=4))
    assert "warning" in replies[0] and replies[0]["field"] == "rules"
    assert [reply["turnNumber"] for reply in replies[1:]] == [0, 2]


@pytest.mark.parametrize("line, message", [
    ("{nope", "could not parse JSON"),
    ("[1, 2]", "JSON object"),
    ('{"boardXSize": 9}', "string 'id'"),
    (query(boardYSize=9), "square"),
    (query(boardXSize=25, boardYSize=25), "square"),
    (query(moves=[["B", "D4"], ["W", "D4"]]), "Illegal move 1"),
    (query(moves=[["B", "Z9"]]), "invalid vertex"),
    (query(moves=[["X", "D4"]]), "unknown player"),
    (query(moves=[["B"]]), "bad query"),
    (query(analyzeTurns=[5]), "analyzeTurns"),
    (query(maxVisits=0), "maxVisits"),
    (query(action="explode"), "unknown action"),
])
def test_bad_queries_get_an_error_not_a_crash(line, message):
    replies = engine().handle(line)
    assert len(replies) == 1 and message in replies[0]["error"]


def test_the_engine_through_a_real_pipe():
    lines = [json.dumps({"id": "v", "action": "query_version"}), "garbage",
             query(moves=[["B", "D4"]], maxVisits=8, includePolicy=True)]
    process = subprocess.run([sys.executable, "-m", "mlcasebook", "go", "analysis", "--visits", "8"],
                             input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    replies = [json.loads(line) for line in process.stdout.splitlines()]
    assert replies[0]["version"].startswith("mlcasebook-go")
    assert "error" in replies[1]
    assert replies[2]["id"] == "q" and replies[2]["moveInfos"] and len(replies[2]["policy"]) == 50


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc (Linux)")
def test_the_engine_ends_when_the_shell_that_started_it_is_terminated():
    """KaTrain runs a custom engine command through a shell and stops it with terminate()."""
    marker = "31337"  # a seed no other test uses, to find our process
    command = f"{sys.executable} -m mlcasebook go analysis --visits 4 --seed {marker}"
    shell = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        shell.stdin.write(b'{"id": "v", "action": "query_version"}\n')
        shell.stdin.flush()
        assert b"query_version" in shell.stdout.readline()  # the engine is up
        shell.terminate()
        shell.wait(timeout=10)
        deadline = time.time() + 10
        while time.time() < deadline and engine_alive(marker):
            time.sleep(0.2)
        assert not engine_alive(marker)
    finally:
        shell.kill()


def engine_alive(marker: str) -> bool:
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = status.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"analysis" in cmdline and marker.encode() in cmdline and b"-c" not in cmdline:
            return True
    return False
