"""GTP: the engine through a real pipe (including malformed input), the protocol rules, the clock."""

from __future__ import annotations

import io
import sys

import pytest

from mlcasebook.go.gtp import Clock, GtpClient, GtpEngine, GtpError
from mlcasebook.go.players import RandomPlayer

ENGINE = [sys.executable, "-m", "mlcasebook", "go", "gtp", "--random", "--seed", "1"]


def engine() -> GtpEngine:
    return GtpEngine(RandomPlayer(0))


def test_required_commands_are_listed_and_known():
    required = ("protocol_version name version known_command list_commands boardsize clear_board komi play "
                "genmove undo showboard final_score time_settings time_left quit").split()
    gtp = engine()
    listed = gtp.handle("list_commands")[2:].split()
    assert set(required) <= set(listed)
    assert gtp.handle("known_command genmove") == "= true\n\n"
    assert gtp.handle("known_command fly") == "= false\n\n"


@pytest.mark.parametrize(("line", "reply"), [
    ("12 protocol_version", "=12 2\n\n"),
    ("frobnicate", "? unknown command\n\n"),
    ("7 frobnicate", "?7 unknown command\n\n"),
    ("boardsize 4", "? unacceptable size\n\n"),
    ("boardsize nine", "? boardsize needs one integer\n\n"),
    ("komi abc", "? syntax error: komi must be a number\n\n"),
    ("play b", "? play needs a color and a vertex\n\n"),
    ("play x e5", "? invalid color 'x'\n\n"),
    ("play b z99", "? invalid vertex 'z99'\n\n"),
    ("play b a10", "? vertex 'a10' is off a 9x9 board\n\n"),
    ("genmove", "? genmove needs a color\n\n"),
    ("undo", "? cannot undo\n\n"),
    ("time_left b x 0", "? syntax error: time_left takes numbers\n\n"),
    ("5", "?5 missing command\n\n"),
    ("  # only a comment", None),
    ("", None),
])
def test_malformed_commands_get_a_question_mark_reply(line, reply):
    assert engine().handle(line) == reply


def test_control_characters_tabs_and_comments_are_cleaned():
    gtp = engine()
    assert gtp.handle("\x01boardsize\t7 # seven\r") == "=\n\n"
    assert gtp.state.size == 7


def test_illegal_moves_are_refused_and_the_board_is_unchanged():
    gtp = engine()
    assert gtp.handle("play b e5") == "=\n\n"
    reply = gtp.handle("play w e5")
    assert reply.startswith("? illegal move") and gtp.state.move_number == 1


def test_a_player_bug_is_an_error_reply_not_a_crash():
    class Broken:
        def choose(self, state, seconds):
            raise RuntimeError("boom")

    gtp = GtpEngine(Broken())
    assert gtp.handle("3 genmove b").startswith("?3 internal error: RuntimeError: boom")
    assert gtp.handle("name") == "= mlcasebook-go\n\n"


def test_serve_stops_at_quit():
    out = io.StringIO()
    engine().serve(io.StringIO("name\nquit\nname\n"), out)
    assert out.getvalue() == "= mlcasebook-go\n\n=\n\n"


def test_clock_budget():
    from mlcasebook.go.board import GoState

    state = GoState(9)
    assert Clock().budget(state, 2.0) == 2.0
    in_main = Clock(60, 0, 0, time_left=60.0, stones_left=0).budget(state, 5.0)
    assert 0.05 <= in_main < 5.0  # 60 s shared by ~40 moves is below 5 s a move
    in_byo = Clock(0, 30, 10, time_left=30.0, stones_left=10).budget(state, None)
    assert abs(in_byo - 0.8 * 3.0) < 1e-9


def test_engine_through_a_real_pipe():
    with GtpClient(ENGINE, timeout=60) as client:
        assert client.send("protocol_version") == "2"
        assert client.send("name") == "mlcasebook-go"
        client.send("boardsize 7")
        client.send("komi 5.5")
        with pytest.raises(GtpError, match="unknown command"):
            client.send("nonsense here")
        client.send("play b d4")
        with pytest.raises(GtpError, match="illegal move"):
            client.send("play w d4")
        client.send("time_settings 30 0 0")
        client.send("time_left b 30 0")
        for colour in "bw" * 12:
            vertex = client.send(f"genmove {colour}")
            assert vertex == "pass" or vertex[0] in "ABCDEFG"
        board = client.send("showboard")
        assert "A B C D E F G" in board
        client.send("undo")
        assert client.send("final_score")[0] in "BW0"
        # garbage bytes do not kill the engine
        with pytest.raises(GtpError):
            client.send("\x7f\x02 ??? \x03")
        assert client.send("version")
    assert client.process.returncode == 0


def test_client_reports_a_dead_or_silent_engine():
    with pytest.raises(GtpError, match="cannot start"):
        GtpClient(["/nonexistent/engine"])
    silent = GtpClient([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    with pytest.raises(GtpError, match="did not answer"):
        silent.send("name")
    assert silent.process.poll() is not None
    talker = GtpClient([sys.executable, "-c", "print('hello'); print()"], timeout=5)
    with pytest.raises(GtpError, match="non-GTP output"):
        talker.send("name")
    talker.close()
