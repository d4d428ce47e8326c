"""GTP v2: our engine as a GTP server (stdin/stdout), and a client that drives any GTP engine.

The server never crashes on input: every malformed or illegal command gets a ``? message``
reply (with the command's id echoed), and an exception inside a player becomes a ``?`` reply
too. The client talks to any engine over a pipe with a timeout on every answer, so a hung
engine is an error, not a hung match.

Spec: https://www.lysator.liu.se/~gunnar/gtp/gtp2-spec-draft2/gtp2-spec.html
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from .. import __version__
from ..core.errors import CasebookError
from .board import BLACK, MAX_SIZE, MIN_SIZE, WHITE, GoState, IllegalMove, action_to_vertex, vertex_to_action

RESIGN = -1
ENGINE_NAME = "mlcasebook-go"


class Player(Protocol):
    """What the GTP engine asks to pick moves; ``seconds`` is the thinking budget (None: use own)."""

    def choose(self, state: GoState, seconds: float | None) -> int:  # an action, or RESIGN
        ...


class GtpError(CasebookError):
    """An engine answered ``?`` or did not answer in time."""


@dataclass
class Clock:
    """Time left for one colour as the controller reports it (time_settings / time_left)."""

    main_time: float = 0.0
    byo_yomi_time: float = 0.0
    byo_yomi_stones: int = 0
    time_left: float | None = None
    stones_left: int = 0

    def budget(self, state: GoState, per_move: float | None) -> float | None:
        """Seconds to spend on this move: the fixed budget, capped by what the clock allows."""
        if self.time_left is None:
            return per_move
        margin = 0.8  # pipes, net start-up and the controller's own overhead
        if self.stones_left > 0:  # in byo-yomi: share the period among its stones
            allowed = margin * self.time_left / self.stones_left
        else:
            empty = int((state.stones() == 0).sum())
            expected_moves = max(10, empty // 2)  # our remaining moves, roughly
            allowed = margin * (self.time_left / expected_moves)
            if self.byo_yomi_stones > 0 and self.byo_yomi_time > 0:
                allowed = max(allowed, margin * self.byo_yomi_time / self.byo_yomi_stones)
        allowed = max(0.05, allowed)
        return allowed if per_move is None else min(per_move, allowed)


@dataclass
class GtpEngine:
    """The GTP v2 command loop around a ``Player``."""

    player: Player
    seconds_per_move: float | None = None
    size: int = 9
    komi: float = 7.0
    name: str = ENGINE_NAME
    state: GoState = field(init=False)
    clocks: dict[int, Clock] = field(init=False)
    quit_requested: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.state = GoState(self.size, self.komi)
        self.clocks = {BLACK: Clock(), WHITE: Clock()}
        self.handlers: dict[str, Callable[[list[str]], str]] = {
            "protocol_version": lambda args: "2",
            "name": lambda args: self.name,
            "version": lambda args: __version__,
            "known_command": lambda args: "true" if args and args[0] in self.handlers else "false",
            "list_commands": lambda args: "\n".join(sorted(self.handlers)),
            "boardsize": self._boardsize,
            "clear_board": self._clear_board,
            "komi": self._komi,
            "play": self._play,
            "genmove": self._genmove,
            "undo": self._undo,
            "showboard": lambda args: "\n" + str(self.state),
            "final_score": lambda args: self.state.result_string(),
            "time_settings": self._time_settings,
            "time_left": self._time_left,
            "quit": self._quit,
        }

    # ---------------------------------------------------------------- protocol
    def handle(self, line: str) -> str | None:
        """One input line -> the full reply (with the blank line), or None for an empty line."""
        cleaned = "".join(ch for ch in line if ch in "\t\n" or 32 <= ord(ch) != 127)
        cleaned = cleaned.split("#", 1)[0].replace("\t", " ").strip()
        if not cleaned:
            return None
        words = cleaned.split()
        command_id = ""
        if words[0].isdigit():
            command_id = words.pop(0)
            if not words:
                return f"?{command_id} missing command\n\n"
        command, args = words[0], words[1:]
        handler = self.handlers.get(command)
        if handler is None:
            return f"?{command_id} unknown command\n\n"
        try:
            result = handler(args)
        except (CasebookError, ValueError) as exc:
            message = exc.message if isinstance(exc, CasebookError) else str(exc)
            return f"?{command_id} {message}\n\n"
        except Exception as exc:  # a bug in a player must not take the engine down mid-game
            return f"?{command_id} internal error: {exc.__class__.__name__}: {exc}\n\n"
        return f"={command_id} {result}".rstrip(" ") + "\n\n"

    def serve(self, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        for line in stdin:
            reply = self.handle(line)
            if reply is None:
                continue
            stdout.write(reply)
            stdout.flush()
            if self.quit_requested:
                break

    # ---------------------------------------------------------------- commands
    @staticmethod
    def _color(word: str) -> int:
        colour = word.lower()
        if colour in ("b", "black"):
            return BLACK
        if colour in ("w", "white"):
            return WHITE
        raise CasebookError(f"invalid color {word!r}")

    def _boardsize(self, args: list[str]) -> str:
        if len(args) != 1 or not args[0].isdigit():
            raise CasebookError("boardsize needs one integer")
        size = int(args[0])
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise CasebookError("unacceptable size")
        self.size = size
        return self._clear_board([])

    def _clear_board(self, args: list[str]) -> str:
        self.state = GoState(self.size, self.komi)
        return ""

    def _komi(self, args: list[str]) -> str:
        if len(args) != 1:
            raise CasebookError("komi needs one number")
        try:
            komi = float(args[0])
        except ValueError:
            raise CasebookError("syntax error: komi must be a number") from None
        self.komi = komi
        self.state.komi = komi
        return ""

    def _play(self, args: list[str]) -> str:
        if len(args) != 2:
            raise CasebookError("play needs a color and a vertex")
        color = self._color(args[0])
        if args[1].lower() == "resign":
            self.state.resign(color)
            return ""
        action = vertex_to_action(args[1], self.size)
        if self.state.passes >= 2:
            self.state.resume()  # GTP lets the controller decide when a game ends
        try:
            self.state.play(action, color)
        except IllegalMove as exc:
            raise CasebookError(f"illegal move: {exc.message}") from None
        return ""

    def _genmove(self, args: list[str]) -> str:
        if len(args) != 1:
            raise CasebookError("genmove needs a color")
        color = self._color(args[0])
        if self.state.resigned is not None:
            raise CasebookError("the game is over (resigned)")
        self.state.resume(to_play=color)
        started = time.monotonic()
        budget = self.clocks[color].budget(self.state, self.seconds_per_move)
        action = self.player.choose(self.state.clone(), budget)
        if action == RESIGN:
            self.state.resign(color)
            return "resign"
        self.state.play(action, color)
        clock = self.clocks[color]
        if clock.time_left is not None:
            clock.time_left -= time.monotonic() - started
        return action_to_vertex(action, self.size)

    def _undo(self, args: list[str]) -> str:
        try:
            self.state.undo()
        except IllegalMove:
            raise CasebookError("cannot undo") from None
        return ""

    def _time_settings(self, args: list[str]) -> str:
        if len(args) != 3:
            raise CasebookError("time_settings needs main_time byo_yomi_time byo_yomi_stones")
        try:
            main_time, byo_time, byo_stones = float(args[0]), float(args[1]), int(args[2])
        except ValueError:
            raise CasebookError("syntax error: time_settings takes numbers") from None
        for color in (BLACK, WHITE):
            self.clocks[color] = Clock(main_time, byo_time, byo_stones,
                                       None if main_time == 0 and byo_time == 0 else main_time)
        return ""

    def _time_left(self, args: list[str]) -> str:
        if len(args) != 3:
            raise CasebookError("time_left needs color time stones")
        color = self._color(args[0])
        try:
            seconds, stones = float(args[1]), int(args[2])
        except ValueError:
            raise CasebookError("syntax error: time_left takes numbers") from None
        self.clocks[color].time_left, self.clocks[color].stones_left = seconds, stones
        return ""

    def _quit(self, args: list[str]) -> str:
        self.quit_requested = True
        return ""


class GtpClient:
    """Drive a GTP engine over a pipe: ``send`` returns the answer text, raises GtpError on ``?``."""

    def __init__(self, command: Sequence[str], timeout: float = 120.0, name: str | None = None):
        self.command = list(command)
        self.timeout = timeout
        self.name = name or " ".join(self.command)
        try:
            self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
        except OSError as exc:
            raise GtpError(f"cannot start engine {self.name!r}: {exc}",
                           hint="check the command line (is the program installed and on PATH?)") from None
        self._lines: queue.Queue[str | None] = queue.Queue()
        # a reader thread, so a silent engine turns into a timeout instead of a blocked readline
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, command: str, timeout: float | None = None) -> str:
        if self.process.poll() is not None:
            raise GtpError(f"engine {self.name!r} has exited (status {self.process.returncode})")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(command.strip() + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise GtpError(f"engine {self.name!r} closed its input") from None
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        reply: list[str] = []
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.close(force=True)
                raise GtpError(f"engine {self.name!r} did not answer {command!r} in time") from None
            if line is None:
                raise GtpError(f"engine {self.name!r} exited while answering {command!r}")
            line = line.rstrip("\r\n")
            if not reply and not line.strip():
                continue  # stray blank lines before an answer
            if reply and not line.strip():
                break
            reply.append(line)
        first = reply[0]
        text = "\n".join([first[1:].lstrip("0123456789").strip()] + reply[1:]).strip()
        if first.startswith("?"):
            raise GtpError(f"engine {self.name!r} refused {command!r}: {text}")
        if not first.startswith("="):
            raise GtpError(f"engine {self.name!r} answered {command!r} with non-GTP output: {first!r}")
        return text

    def close(self, force: bool = False) -> None:
        if self.process.poll() is None and not force:
            try:
                self.send("quit", timeout=5)
            except GtpError:
                pass
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=0 if force else 5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    def __enter__(self) -> GtpClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
