"""Rules speed: our pure-Python Go against open_spiel's C++ Go, same policy, same run.

Policy for the like-for-like row: list the legal actions (pass included), pick one uniformly,
stop after two passes or at open_spiel's 9x9 default cap of 2·N² moves (162). Our engine also
gets its own playout policy (rejection sampling of non-eye-filling moves until both pass),
which is what the rollout evaluator uses.

    OMP_NUM_THREADS=1 flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/go_rules_speed.py
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import pandas as pd

from common import print_table, save
from mlcasebook.go.board import GoState, random_playout


def timed(run_once, seconds: float) -> tuple[int, int, float]:
    """Repeat ``run_once`` (returns moves played) for about ``seconds``: (playouts, moves, elapsed)."""
    playouts = moves = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        moves += run_once()
        playouts += 1
    return playouts, moves, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=8.0, help="time per measured row")
    parser.add_argument("--note", default="", help="machine conditions to record with the figures")
    parser.add_argument("--out", type=Path, default=Path("docs/results/go_rules.json"))
    args = parser.parse_args()
    size, cap = args.size, 2 * args.size * args.size
    rng = random.Random(0)

    def ours_uniform() -> int:
        state = GoState(size, komi=7.0)
        while not state.is_over() and state.move_number < cap:
            state.play(rng.choice(state.legal_actions()))
        state.score()
        return state.move_number

    def ours_playout() -> int:
        state = random_playout(GoState(size, komi=7.0), rng)
        state.score()
        return state.move_number

    rows = []
    for name, function in (("mlcasebook (Python): legal list + uniform choice", ours_uniform),
                           ("mlcasebook (Python): rollout policy (no eye filling)", ours_playout)):
        playouts, moves, elapsed = timed(function, args.seconds)
        rows.append({"engine": name, "playouts/s": playouts / elapsed, "moves/s": moves / elapsed,
                     "moves/playout": moves / playouts})
    try:
        import pyspiel
    except ImportError:
        pyspiel = None
    if pyspiel is not None:
        game = pyspiel.load_game("go", {"board_size": size, "komi": 7.0, "max_game_length": cap})

        def spiel_uniform() -> int:
            state = game.new_initial_state()
            played = 0
            while not state.is_terminal():
                state.apply_action(rng.choice(state.legal_actions()))
                played += 1
            state.returns()
            return played

        playouts, moves, elapsed = timed(spiel_uniform, args.seconds)
        rows.append({"engine": "open_spiel (C++ via pybind): legal list + uniform choice",
                     "playouts/s": playouts / elapsed, "moves/s": moves / elapsed, "moves/playout": moves / playouts})

    # the operations MCTS uses per node
    state = GoState(size)
    for _ in range(30):
        state.play(rng.choice([a for a in state.legal_actions() if a != state.pass_action]))
    ops = []
    for name, op in (("legal_mask (30 stones, not cached)", lambda: state._compute_legal_mask(state.to_play)),
                     ("clone", state.clone), ("score", state.score)):
        repeats, started = 0, time.perf_counter()
        while time.perf_counter() - started < 1.0:
            op()
            repeats += 1
        ops.append({"operation": name, "microseconds": 1e6 * (time.perf_counter() - started) / repeats})
    if pyspiel is not None:
        spiel_state = game.new_initial_state()
        for record in state.moves:
            spiel_state.apply_action(record.action)
        for name, op in (("open_spiel legal_actions (30 stones)", spiel_state.legal_actions),
                         ("open_spiel clone", spiel_state.clone)):
            repeats, started = 0, time.perf_counter()
            while time.perf_counter() - started < 1.0:
                op()
                repeats += 1
            ops.append({"operation": name, "microseconds": 1e6 * (time.perf_counter() - started) / repeats})

    playouts, operations = pd.DataFrame(rows), pd.DataFrame(ops)
    print_table(playouts, f"random playouts on {size}x{size}")
    print_table(operations, "per-node operations")
    settings = {"command": "OMP_NUM_THREADS=1 flock /tmp/mlcasebook-cpu.lock .venv/bin/python "
                           "benchmarks/go_rules_speed.py", "size": size, "cap_moves": cap,
                "seconds_per_row": args.seconds, "threads": os.environ.get("OMP_NUM_THREADS"),
                "load_average": os.getloadavg(), "note": args.note}
    save(args.out, settings, {"playouts": playouts, "operations": operations})


if __name__ == "__main__":
    main()
