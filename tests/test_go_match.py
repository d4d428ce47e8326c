"""Matches: two random engines through real pipes, SGF records, forfeits, statistics."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
from sgfmill import sgf

from mlcasebook.core.errors import CasebookError
from mlcasebook.go.board import GoState
from mlcasebook.go.match import elo_difference, engine_command, run_match, wilson_interval


def test_match_of_two_random_engines_through_pipes(tmp_path):
    summary = run_match("random:1", "random:2", games=4, size=5, komi=0.5, sgf_dir=tmp_path)
    assert summary.games == 4 and summary.first_wins + summary.second_wins + summary.draws == 4
    assert summary.disagreements == 0 and summary.forfeits == 0
    files = sorted(tmp_path.glob("*.sgf"))
    assert len(files) == 4
    wins_of_first = 0
    for index, path in enumerate(files):
        game = sgf.Sgf_game.from_bytes(path.read_bytes())
        assert game.get_size() == 5 and game.get_komi() == 0.5
        state = GoState(5, komi=0.5)
        for node in game.get_main_sequence()[1:]:
            colour, move = node.get_move()
            action = 25 if move is None else (4 - move[0]) * 5 + move[1]
            state.play(action, 1 if colour == "b" else 2)
        # replaying the SGF with our rules gives the recorded result
        assert game.get_root().get("RE") == state.result_string()
        first_is_black = index % 2 == 0
        wins_of_first += state.winner() == (1 if first_is_black else 2)
    assert wins_of_first == summary.first_wins
    assert summary.distinct_games == 4  # two seeded random players never replay a 5x5 game


def test_parallel_streams_keep_colours_and_order(tmp_path):
    summary = run_match("random:1", "random:2", games=5, size=5, komi=0.5, sgf_dir=tmp_path, parallel=2)
    assert summary.games == 5 and summary.first_wins + summary.second_wins + summary.draws == 5
    files = sorted(tmp_path.glob("*.sgf"))
    assert [f.name for f in files] == [f"game_{i:04d}.sgf" for i in range(1, 6)]
    for index, path in enumerate(files):  # the first engine is Black in games 1, 3, 5 whatever the stream
        root = sgf.Sgf_game.from_bytes(path.read_bytes()).get_root()
        assert root.get("PB") == ("random:1" if index % 2 == 0 else "random:2")
    with pytest.raises(CasebookError, match="parallel"):
        run_match("random:1", "random:2", games=1, size=5, parallel=0)


def test_parallel_streams_give_our_engine_different_seeds():
    from mlcasebook.go.match import _stream_spec

    assert _stream_spec("ours:m.ckpt,policy", 0) == "ours:m.ckpt,policy"
    assert _stream_spec("ours:m.ckpt,policy", 1) == "ours:m.ckpt,policy,seed=1"
    assert _stream_spec("ours,seed=5", 1) == "ours,seed=5" and _stream_spec("gnugo:1", 1) == "gnugo:1"
    assert "--seed" in engine_command(_stream_spec("ours,time=1", 2))


def test_an_interrupted_match_resumes_from_its_sgf_files(tmp_path):
    first = run_match("random:1", "random:2", games=4, size=5, komi=0.5, sgf_dir=tmp_path)
    kept = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.sgf") if p.name != "game_0003.sgf"}
    (tmp_path / "game_0003.sgf").unlink()  # as if the match had stopped during game 3
    again = run_match("random:1", "random:2", games=4, size=5, komi=0.5, sgf_dir=tmp_path)
    assert again.games == 4 and (tmp_path / "game_0003.sgf").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.sgf") if p.name != "game_0003.sgf"} == kept
    # games read back count as they did: same winners for the kept games, time per move kept
    assert again.seconds_per_move["random:1"] > 0
    done = run_match("random:1", "random:2", games=4, size=5, komi=0.5, sgf_dir=tmp_path)
    assert (done.first_wins, done.second_wins, done.draws) == (again.first_wins, again.second_wins, again.draws)
    assert abs(done.seconds_per_move["random:1"] - again.seconds_per_move["random:1"]) < 1e-3
    assert first.games == 4
    with pytest.raises(CasebookError, match="other engines"):
        run_match("random:3", "random:2", games=4, size=5, komi=0.5, sgf_dir=tmp_path)
    with pytest.raises(CasebookError, match="komi"):
        run_match("random:1", "random:2", games=4, size=5, komi=7, sgf_dir=tmp_path)


def test_repeated_games_are_counted():
    from mlcasebook.go.match import GameRecord, summarise

    same = [(1, 12), (2, 7), (1, 25), (2, 25)]
    records = [GameRecord("a", "b", list(same), "B+1", 1), GameRecord("b", "a", list(same), "B+1", 1),
               GameRecord("a", "b", same[:1] + [(2, 8)] + same[2:], "W+2", 2)]
    summary = summarise("a", "b", records)
    assert summary.games == 3 and summary.distinct_games == 2
    assert (summary.first_wins, summary.second_wins) == (1, 2)  # game 2's Black is the second engine


def test_an_engine_that_plays_an_illegal_move_forfeits(tmp_path):
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(textwrap.dedent("""
        import sys
        for line in sys.stdin:
            word = line.split()[0] if line.split() else ""
            print("= A1" if word == "genmove" else "=")
            print(flush=True)
            if word == "quit":
                break
    """))
    summary = run_match(f"{sys.executable} {stubborn}", "random:3", games=2, size=5)
    assert summary.forfeits >= 1 and summary.second_wins >= 1
    assert any("forfeits" in note for note in summary.notes)


def test_engine_specs():
    assert engine_command("random:4")[-3:] == ["--random", "--seed", "4"]
    ours = engine_command("ours:net.ckpt,playouts=50,time=1.5")
    assert ours[-6:] == ["--model", "net.ckpt", "--playouts", "50", "--time-per-move", "1.5"]
    assert engine_command("ours:n.ckpt,policy")[-3:] == ["--model", "n.ckpt", "--policy-only"]
    assert engine_command("ours,rollouts")[-1] == "--rollouts" and "--model" not in engine_command("ours,rollouts")
    assert engine_command("katago gtp -model 'm b.gz'") == ["katago", "gtp", "-model", "m b.gz"]
    with pytest.raises(CasebookError):
        engine_command("ours,depth=3")
    try:
        command = engine_command("gnugo:7")
    except CasebookError:
        pytest.skip("GNU Go is not installed")
    assert "--level" in command and "7" in command and "--capture-all-dead" in command
    with pytest.raises(CasebookError):
        engine_command("gnugo:11")


def test_wilson_interval_and_elo():
    low, high = wilson_interval(50, 100)
    assert low < 0.5 < high and math.isclose(0.5 - low, high - 0.5)
    assert math.isclose(low, 0.4038, abs_tol=1e-3)  # textbook value for 50/100
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert elo_difference(0.5) == 0.0
    assert math.isclose(elo_difference(0.75), 190.85, abs_tol=0.1)
    assert math.isclose(elo_difference(0.25), -elo_difference(0.75))
