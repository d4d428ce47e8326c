"""Matches between any two GTP engines: alternating colours, SGF for every game, win rate and Elo.

The referee is our own rules engine: every move is checked (an engine that plays an illegal
move under positional superko forfeits the game; that is logged) and finished games are scored
by Tromp-Taylor. Engines' own ``final_score`` is asked too, and every disagreement is logged:
GNU Go, for instance, removes stones it judges dead, Tromp-Taylor counts every stone on the
board, so an engine that passes with dead enemy stones inside its area is scored as it left the
board (the rule CGOS and KataGo's self-play use).
"""

from __future__ import annotations

import math
import shlex
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import CasebookError
from ..core.progress import bar
from .board import BLACK, EMPTY, WHITE, GoState, IllegalMove, action_to_vertex, vertex_to_action
from .gtp import GtpClient, GtpError

GNUGO_PATHS = ("gnugo", "/usr/games/gnugo")


def engine_command(spec: str) -> list[str]:
    """An engine spec -> a command line.

    ``gnugo:LEVEL``  GNU Go at a level (0-10), area (Chinese) scoring, capturing dead stones before it passes;
    ``random[:SEED]``  our uniformly random player;
    ``ours[:MODEL][,playouts=N][,time=S][,policy|rollouts]``  our engine (the shipped 9x9 network when
                     no model; ``policy``: the raw policy network, no search; ``rollouts``: MCTS with
                     random rollouts, no network);
    anything else   a command line, e.g. ``"katago gtp -model m.bin.gz"``.
    """
    head, _, options = spec.partition(",")
    name, _, argument = head.partition(":")
    python = [sys.executable, "-m", "mlcasebook", "go", "gtp"]
    if name == "gnugo":
        binary = next((found for path in GNUGO_PATHS if (found := shutil.which(path))), None)
        if binary is None:
            raise CasebookError("GNU Go is not installed", hint="apt-get install gnugo (or `make`, which does it)")
        level = argument or "10"
        if not level.isdigit() or not 0 <= int(level) <= 10:
            raise CasebookError(f"bad GNU Go level in {spec!r}", hint="use gnugo:0 … gnugo:10")
        # --capture-all-dead: GNU Go removes dead stones before passing, as Tromp-Taylor scoring needs
        return [binary, "--mode", "gtp", "--level", level, "--chinese-rules", "--capture-all-dead"]
    if name == "random":
        return python + ["--random", "--seed", argument or "0"]
    if name == "ours":
        command = python + (["--model", argument] if argument else [])
        for option in filter(None, options.split(",")):
            if option in ("policy", "rollouts"):
                command.append({"policy": "--policy-only", "rollouts": "--rollouts"}[option])
                continue
            key, _, value = option.partition("=")
            flags = {"playouts": "--playouts", "time": "--time-per-move", "seed": "--seed"}
            if key not in flags or not value:
                raise CasebookError(f"unknown option {option!r} in {spec!r}",
                                    hint="use ours:MODEL,playouts=N,time=S,seed=K, ours:MODEL,policy or ours,rollouts")
            command += [flags[key], value]
        return command
    return shlex.split(spec)


@dataclass
class GameRecord:
    black: str
    white: str
    moves: list[tuple[int, int]]  # (colour, action); action -1 for resign
    result: str  # 'B+3.5', 'W+R', 'W+F' (forfeit), '0'
    winner: int  # BLACK / WHITE / EMPTY
    notes: list[str] = field(default_factory=list)
    seconds: dict[int, list[float]] = field(default_factory=lambda: {BLACK: [], WHITE: []})


def play_game(black: GtpClient, white: GtpClient, size: int, komi: float, max_moves: int) -> GameRecord:
    """One game; our rules referee it."""
    engines = {BLACK: black, WHITE: white}
    for client in engines.values():
        client.send(f"boardsize {size}")
        client.send("clear_board")
        client.send(f"komi {komi:g}")
    state = GoState(size, komi)
    record = GameRecord(black.name, white.name, [], "", EMPTY)
    colour = BLACK
    while not state.is_over() and state.move_number < max_moves:
        started = time.monotonic()
        answer = engines[colour].send(f"genmove {'b' if colour == BLACK else 'w'}").strip().lower()
        record.seconds[colour].append(time.monotonic() - started)
        if answer == "resign":
            state.resign(colour)
            record.moves.append((colour, -1))
            break
        try:
            action = vertex_to_action(answer, size)
            state.play(action, colour)
        except (CasebookError, IllegalMove) as exc:
            record.notes.append(f"{engines[colour].name} played {answer!r}: {exc}; it forfeits")
            record.result, record.winner = f"{'W' if colour == BLACK else 'B'}+F", 3 - colour
            return record
        record.moves.append((colour, action))
        other = engines[3 - colour]
        other.send(f"play {'b' if colour == BLACK else 'w'} {action_to_vertex(action, size)}")
        colour = 3 - colour
    if state.move_number >= max_moves and not state.is_over():
        record.notes.append(f"stopped at the {max_moves}-move cap; scored as the board stands")
    record.result, record.winner = state.result_string(), state.winner()
    if state.resigned is None:
        for client in engines.values():
            try:
                theirs = client.send("final_score").strip()
            except GtpError:
                continue
            if theirs and theirs.upper() != record.result.upper() and _margin(theirs) != _margin(record.result):
                record.notes.append(f"{client.name} scores {theirs}, Tromp-Taylor says {record.result}")
    return record


def _margin(result: str) -> float | None:
    try:
        return 0.0 if result.strip() == "0" else float(result[2:]) * (1 if result[0].upper() == "B" else -1)
    except (ValueError, IndexError):
        return None


def save_sgf(record: GameRecord, path: Path, size: int, komi: float,
             comments: dict[int, str] | None = None) -> Path:
    """One game as SGF; ``comments`` maps a move's index (0 = the first move) to its node comment."""
    from sgfmill import sgf

    from ..core.checkpoint import atomic_write_bytes

    game = sgf.Sgf_game(size=size)
    root = game.get_root()
    root.set("KM", komi)
    root.set("RU", "Tromp-Taylor (positional superko, no suicide)")
    root.set("PB", record.black)
    root.set("PW", record.white)
    root.set("RE", record.result)
    root.set("AP", ("mlcasebook", "go match"))
    if record.notes:
        root.set("GC", "\n".join(record.notes))
    # thinking time (a private property: total seconds and moves per colour), so a resumed match
    # still reports seconds per move over all its games
    root.set_raw("TM", ";".join(f"{'BW'[c - 1]} {sum(record.seconds[c]):.3f} {len(record.seconds[c])}"
                                for c in (BLACK, WHITE)).encode())
    for index, (colour, action) in enumerate(record.moves):
        if action < 0:
            break
        node = game.extend_main_sequence()
        if comments and index in comments:
            node.set("C", comments[index])
        move = None if action == size * size else divmod(action, size)
        if move is not None:  # sgfmill rows count from the bottom
            move = (size - 1 - move[0], move[1])
        node.set_move("b" if colour == BLACK else "w", move)
    return atomic_write_bytes(path, game.serialise())


def sgf_action(move: tuple[int, int] | None, size: int) -> int:
    """An sgfmill move (row from the bottom, column; None for a pass) as our action index."""
    return size * size if move is None else (size - 1 - move[0]) * size + move[1]


def load_sgf_record(path: Path, size: int, komi: float) -> GameRecord:
    """A game saved by ``save_sgf`` back as a record (for resuming a match)."""
    from sgfmill import sgf

    try:
        game = sgf.Sgf_game.from_bytes(Path(path).read_bytes())
        root = game.get_root()
        names = root.get("PB"), root.get("PW")
        result = root.get("RE")
    except (ValueError, KeyError) as exc:
        raise CasebookError(f"cannot resume from {path}: {exc}", hint="delete that file to replay the game") from exc
    if game.get_size() != size or game.get_komi() != komi:
        raise CasebookError(f"{path} is a {game.get_size()}x{game.get_size()} game with komi {game.get_komi():g}",
                            hint="use an empty --sgf-dir for a match with other settings")
    moves = []
    for node in game.get_main_sequence()[1:]:
        colour, move = node.get_move()
        if colour is not None:
            moves.append((BLACK if colour == "b" else WHITE, sgf_action(move, size)))
    winner = BLACK if result.upper().startswith("B+") else WHITE if result.upper().startswith("W+") else EMPTY
    if result.upper().endswith("+R"):
        moves.append((3 - winner, -1))
    record = GameRecord(names[0], names[1], moves, result, winner,
                        root.get("GC").split("\n") if root.has_property("GC") else [])
    if root.has_property("TM"):
        for part in root.get_raw("TM").decode().split(";"):
            letter, total, count = part.split()
            record.seconds[BLACK if letter == "B" else WHITE] = [float(total) / max(1, int(count))] * int(count)
    return record


def wilson_interval(successes: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def elo_difference(score: float) -> float:
    """Elo gap implied by an expected score (clipped so 0 % and 100 % stay finite)."""
    score = min(max(score, 1e-3), 1 - 1e-3)
    return -400.0 * math.log10(1.0 / score - 1.0)


@dataclass
class MatchSummary:
    first: str
    second: str
    games: int
    first_wins: int
    second_wins: int
    draws: int
    first_wins_as_black: int
    first_wins_as_white: int
    win_rate: float
    win_rate_95: tuple[float, float]
    elo: float
    elo_95: tuple[float, float]
    seconds_per_move: dict[str, float]
    disagreements: int
    forfeits: int
    notes: list[str]
    # two deterministic engines replay the same game: fewer distinct games than games means the
    # win rate rests on fewer independent trials than it seems
    distinct_games: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def summarise(first: str, second: str, records: list[GameRecord]) -> MatchSummary:
    """Win rate of ``first`` with a Wilson 95 % interval, and the Elo gap over the interval's ends."""
    first_wins = second_wins = draws = as_black = as_white = 0
    times: dict[str, list[float]] = {first: [], second: []}
    notes: list[str] = []
    for index, record in enumerate(records):
        first_colour = BLACK if index % 2 == 0 else WHITE
        if record.winner == EMPTY:
            draws += 1
        elif record.winner == first_colour:
            first_wins += 1
            as_black += first_colour == BLACK
            as_white += first_colour == WHITE
        else:
            second_wins += 1
        times[first] += record.seconds[first_colour]
        times[second] += record.seconds[3 - first_colour]
        notes += [f"game {index + 1}: {note}" for note in record.notes]
    games = len(records)
    score = (first_wins + 0.5 * draws) / games if games else 0.0
    low, high = wilson_interval(first_wins + 0.5 * draws, games)
    return MatchSummary(
        first, second, games, first_wins, second_wins, draws, as_black, as_white, score, (low, high),
        elo_difference(score), (elo_difference(low), elo_difference(high)),
        {name: (sum(values) / len(values) if values else 0.0) for name, values in times.items()},
        sum("Tromp-Taylor says" in note for note in notes), sum("forfeits" in note for note in notes), notes,
        len({tuple(record.moves) for record in records}),
    )


def run_match(first: str, second: str, games: int, size: int = 9, komi: float = 7.0,
              sgf_dir: Path | None = None, max_moves: int | None = None, timeout: float = 300.0,
              parallel: int = 1) -> MatchSummary:
    """``games`` games, ``first`` takes Black in the odd-numbered ones (1st, 3rd, …).

    ``parallel`` > 1 plays that many games at once, each stream with its own pair of engine
    processes (threads only wait on pipes); our engine gets a different ``seed`` per stream so the
    streams do not replay each other's games. Give each engine its share of the cores (e.g.
    ``OMP_NUM_THREADS=1`` and two streams on two cores).

    With ``sgf_dir``, games already saved there are read back instead of played, so an interrupted
    match continues where it stopped (each game's file is written atomically when it ends).
    """
    if games < 1:
        raise CasebookError("a match needs at least one game", hint="--games 1 or more")
    if parallel < 1:
        raise CasebookError("parallel must be at least 1", hint="--parallel 1 plays one game at a time")
    cap = max_moves or 4 * size * size
    records: list[GameRecord | None] = [None] * games
    first_name, second_name = (first, second) if first != second else (f"{first} (A)", f"{second} (B)")
    streams = min(parallel, games)
    for index in range(games):
        path = None if sgf_dir is None else Path(sgf_dir) / f"game_{index + 1:04d}.sgf"
        if path is not None and path.is_file():
            records[index] = load_sgf_record(path, size, komi)
            expected = (first_name, second_name) if index % 2 == 0 else (second_name, first_name)
            if (records[index].black, records[index].white) != expected:
                raise CasebookError(f"{path} is a game between other engines ({records[index].black} vs "
                                    f"{records[index].white})", hint="use an empty --sgf-dir for this match")

    def play_stream(stream: int, advance) -> None:
        todo = [index for index in range(stream, games, streams) if records[index] is None]
        if not todo:
            return
        with GtpClient(engine_command(_stream_spec(first, stream)), timeout, first_name) as engine_a, \
                GtpClient(engine_command(_stream_spec(second, stream)), timeout, second_name) as engine_b:
            for index in todo:
                black, white = (engine_a, engine_b) if index % 2 == 0 else (engine_b, engine_a)
                records[index] = play_game(black, white, size, komi, cap)
                if sgf_dir is not None:
                    save_sgf(records[index], Path(sgf_dir) / f"game_{index + 1:04d}.sgf", size, komi)
                advance(1)

    with bar(games, f"{first} vs {second}") as advance:
        advance(sum(record is not None for record in records))
        if streams == 1:
            play_stream(0, advance)
        else:
            with ThreadPoolExecutor(streams) as pool:
                for future in [pool.submit(play_stream, stream, advance) for stream in range(streams)]:
                    future.result()  # re-raises an engine failure
    return summarise(first_name, second_name, [record for record in records if record is not None])


def _stream_spec(spec: str, stream: int) -> str:
    """Our engine in parallel stream k > 0 gets seed k (unless the spec names one)."""
    if stream == 0 or not spec.startswith("ours") or "seed=" in spec:
        return spec
    return f"{spec},seed={stream}"
