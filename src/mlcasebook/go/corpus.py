"""The 'expert games' of the AlphaGo pipeline: GNU Go self-play saved as SGF, or any SGF folder.

No professional 9x9 records ship offline, so the corpus is generated: GNU Go plays itself
(``--capture-all-dead`` so the final boards score correctly under Tromp-Taylor), the first few
moves are random so the games differ (GNU Go is deterministic). Any folder of SGF files a user
supplies works the same way; games on other board sizes or with handicap stones are skipped.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..core.progress import track
from .board import BLACK, EMPTY, WHITE, GoState, IllegalMove, action_to_vertex, vertex_to_action
from .gtp import GtpClient
from .match import GameRecord, engine_command, save_sgf, sgf_action
from .net import encode
from .players import RandomPlayer
from .selfplay import Examples

# The comment on each random opening move of a generated game. Those moves are not expert moves:
# reading the corpus keeps them as positions (history, value) but not as policy targets.
RANDOM_OPENING_COMMENT = "random opening move (not an expert move)"


def generate_gnugo_games(out_dir: Path, games: int, level: int = 10, size: int = 9, komi: float = 7.0,
                         random_moves: int = 4, seed: int = 0) -> list[Path]:
    """GNU Go against itself; the first ``random_moves`` moves are random legal moves.

    Resumable: a game whose file is already there is kept, not replayed, and the random draws
    stay those of an uninterrupted run, so rerunning an interrupted command finishes the same
    corpus (the CPU-hours spent on it add up across sessions)."""
    rng = random.Random(seed)
    paths = [Path(out_dir) / f"gnugo{level}_{seed}_{index:05d}.sgf" for index in range(games)]
    opening_seeds = [rng.randrange(2**31) for _ in range(games)]
    todo = [index for index, path in enumerate(paths) if not path.is_file()]
    if not todo:
        return paths
    spec = f"gnugo:{level}"
    with GtpClient(engine_command(spec), name=spec) as black, GtpClient(engine_command(spec), name=spec) as white:
        for index in track(todo, f"GNU Go level {level} self-play ({games - len(todo)} of {games} already there)"):
            opening = GoState(size, komi)
            chooser = RandomPlayer(opening_seeds[index])
            for _ in range(random_moves):
                opening.play(chooser.choose(opening, None))
            record = _continue_game(black, white, opening)
            save_sgf(record, paths[index], size, komi, dict.fromkeys(range(random_moves), RANDOM_OPENING_COMMENT))
    return paths


def _continue_game(black: GtpClient, white: GtpClient, opening: GoState) -> GameRecord:
    """Set both engines to ``opening`` and let them finish the game, refereed by our rules."""
    size = opening.size
    engines = {BLACK: black, WHITE: white}
    for client in engines.values():
        client.send(f"boardsize {size}")
        client.send("clear_board")
        client.send(f"komi {opening.komi:g}")
        for move in opening.moves:
            client.send(f"play {'b' if move.color == BLACK else 'w'} {action_to_vertex(move.action, size)}")
    state = opening.clone()
    record = GameRecord(black.name, white.name, [(m.color, m.action) for m in opening.moves], "", EMPTY)
    while not state.is_over() and state.move_number < 4 * size * size:
        colour = state.to_play
        answer = engines[colour].send(f"genmove {'b' if colour == BLACK else 'w'}").strip().lower()
        if answer == "resign":
            state.resign(colour)
            break
        action = vertex_to_action(answer, size)
        state.play(action, colour)
        record.moves.append((colour, action))
        engines[3 - colour].send(f"play {'b' if colour == BLACK else 'w'} {answer}")
    record.result, record.winner = state.result_string(), state.winner()
    return record


def is_held_out(path: Path, fraction: float) -> bool:
    """Whether a game belongs to the held-out split: decided by a hash of its file name, so a game
    keeps its side of the split when the corpus grows (and positions of one game never straddle it)."""
    return zlib.crc32(path.name.encode()) % 10_000 < fraction * 10_000


def read_sgf_examples(folder: Path, size: int = 9, history: int = 4, liberties: bool = True,
                      holdout: float = 0.0, max_files: int | None = None) -> tuple[Examples, Examples | None, dict]:
    """Every position of every usable game in ``folder`` as supervised examples: (train, held_out,
    skipped). A ``holdout`` fraction of the games (by file name, see ``is_held_out``) is kept apart
    to measure move-prediction accuracy; ``held_out`` is None when no game falls there.
    ``max_files``: only the first files in name order (a smaller corpus, e.g. one seed of
    `mlcasebook go corpus`, for training at a smaller compute budget).

    Policy target: the move played (one-hot), except on moves marked as random openings
    (``RANDOM_OPENING_COMMENT``), which only serve as value targets. Value: the recorded result
    (RE) for the side to move (+1 / -1, 0 for a draw).
    Ownership and score: Tromp-Taylor on the final board when the game was played out (not
    resigned); otherwise zero ownership and a large margin with the winner's sign.
    """
    from sgfmill import sgf

    files = sorted(Path(folder).rglob("*.sgf"))[:max_files]
    if not files:
        raise DataError(f"no .sgf files under {folder}", hint="generate some with `mlcasebook go corpus`")
    parts: dict[bool, list[Examples]] = {False: [], True: []}
    skipped = {}
    for path in track(files, "reading SGF"):
        try:
            game = sgf.Sgf_game.from_bytes(path.read_bytes())
        except ValueError as exc:
            skipped[str(path)] = f"unreadable: {exc}"
            continue
        root = game.get_root()
        if game.get_size() != size or root.has_property("AB") or root.has_property("AW"):
            skipped[str(path)] = "other board size or handicap stones"
            continue
        result = root.get("RE") if root.has_property("RE") else ""
        upper = result.strip().upper()
        winner = BLACK if upper.startswith("B+") else WHITE if upper.startswith("W+") else \
            EMPTY if upper in ("0", "DRAW", "JIGO") else None
        if winner is None:
            skipped[str(path)] = f"no result in RE {result!r}"
            continue
        state = GoState(size, game.get_komi())
        planes, moves, colours, expert = [], [], [], []
        try:
            for node in game.get_main_sequence()[1:]:
                colour, move = node.get_move()
                if colour is None:
                    continue
                expert.append(not (node.has_property("C") and node.get("C").startswith(RANDOM_OPENING_COMMENT)))
                action = sgf_action(move, size)
                colour_code = BLACK if colour == "b" else WHITE
                state.resume(to_play=colour_code)
                planes.append(encode([state], history, liberties)[0].astype(np.uint8))
                moves.append(action)
                colours.append(colour_code)
                state.play(action, colour_code)
        except IllegalMove as exc:
            skipped[str(path)] = f"illegal move under our rules: {exc.message}"
            continue
        if not moves:
            continue
        played_out = "+R" not in result.upper() and "+F" not in result.upper()
        owner = state.area_owner() if played_out else np.zeros((size, size), dtype=np.int8)
        margin = state.score() / size**2 if played_out else (0.5 if winner == BLACK else -0.5)
        policy = np.zeros((len(moves), size * size + 1), dtype=np.float32)
        policy[np.arange(len(moves)), moves] = 1.0
        signs = np.array([1.0 if c == BLACK else -1.0 for c in colours], dtype=np.float32)
        winner_sign = {BLACK: 1.0, WHITE: -1.0, EMPTY: 0.0}[winner]  # a draw is worth 0 to both
        game_examples = Examples(np.stack(planes), policy, np.asarray(expert, dtype=np.float32),
                                 signs * winner_sign, (owner[None] * signs[:, None, None]).astype(np.int8),
                                 signs * margin)
        parts[is_held_out(path, holdout)].append(game_examples)
    if not parts[False]:
        where = " outside the held-out split" if parts[True] else ""
        raise DataError(f"no usable {size}x{size} games under {folder}{where}",
                        hint="; ".join(set(skipped.values()))[:300] or "add games or lower the held-out fraction")
    held_out = Examples.concat(parts[True]) if parts[True] else None
    return Examples.concat(parts[False]), held_out, skipped
