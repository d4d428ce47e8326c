"""MCTS throughput (simulations/s): our PUCT search against a plain Python MCTS over open_spiel.

Rows, all from the same middle-game 9x9 position (20 random moves, seed 0), one thread; besides
simulations/s the table gives leaf evaluations/s (a simulation that reaches a finished game, e.g.
pass-pass, needs no evaluation):
- open_spiel's Python ``MCTSBot`` (UCT) with its ``RandomRolloutEvaluator`` (one uniformly random
  rollout per leaf, C++ game, capped at 2·N² moves);
- our MCTS with ``RolloutEvaluator`` (one rollout per leaf, no eye filling, played to the end);
- our MCTS with the network evaluator (6 blocks x 64 channels; weights do not change the speed)
  at leaf batch sizes 1, 8 and 16 — the configuration the engine actually uses — and at batch 8
  with the eager network instead of the frozen TorchScript copy;
- the network's raw forward throughput per batch size, eager and frozen, for reference.

    OMP_NUM_THREADS=1 flock /tmp/mlcasebook-cpu.lock .venv/bin/python benchmarks/go_mcts_speed.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common import print_table, save
from mlcasebook.go.board import GoState
from mlcasebook.go.mcts import MCTS, MCTSConfig, RolloutEvaluator
from mlcasebook.go.net import GoNet, NetConfig, NetEvaluator, encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=9)
    parser.add_argument("--simulations", type=int, default=800)
    parser.add_argument("--note", default="", help="machine conditions to record with the figures")
    parser.add_argument("--out", type=Path, default=Path("docs/results/go_mcts.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    size, sims = args.size, args.simulations
    rows = []

    position = GoState(size)
    rng = np.random.default_rng(0)
    for _ in range(20):
        position.play(int(rng.choice(np.flatnonzero(position.legal_mask()[:-1]))))

    def measure(name: str, search, repeats: int = 2) -> None:
        rates, evaluation_rates = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            done, evaluations = search()
            elapsed = time.perf_counter() - started
            rates.append(done / elapsed)
            evaluation_rates.append(evaluations / elapsed if evaluations is not None else float("nan"))
        rows.append({"search": name, "simulations": sims, "sims/s": float(np.median(rates)),
                     "evaluations/s": float(np.median(evaluation_rates))})

    try:
        import pyspiel
        from open_spiel.python.algorithms import mcts as spiel_mcts
    except ImportError:
        pyspiel = None
    if pyspiel is not None:
        game = pyspiel.load_game("go", {"board_size": size, "komi": 7.0, "max_game_length": 2 * size * size})
        bot = spiel_mcts.MCTSBot(game, uct_c=2.0, max_simulations=sims,
                                 evaluator=spiel_mcts.RandomRolloutEvaluator(n_rollouts=1,
                                                                             random_state=np.random.RandomState(0)),
                                 random_state=np.random.RandomState(0))

        def spiel_search() -> tuple[int, None]:
            spiel_state = game.new_initial_state()
            for record in position.moves:
                spiel_state.apply_action(record.action)
            bot.mcts_search(spiel_state)
            return sims, None

        measure("open_spiel MCTSBot (Python) + C++ rollouts", spiel_search)

    def ours(evaluator, batch: int):
        def run() -> tuple[int, int]:
            result = MCTS(evaluator, MCTSConfig(batch_size=batch)).search(position.clone(), simulations=sims)
            return result.simulations, result.evaluations
        return run

    measure("mlcasebook MCTS + Python rollouts", ours(RolloutEvaluator(), 1))
    net = GoNet(NetConfig())
    for batch in (1, 8, 16):
        measure(f"mlcasebook MCTS + net 6x64, batch {batch}", ours(NetEvaluator(net, "random"), batch))
    # what the frozen TorchScript copy buys (the default on the CPU)
    measure("mlcasebook MCTS + net 6x64, batch 8, eager network", ours(NetEvaluator(net, "random", frozen=False), 8))

    forward = []
    frozen = NetEvaluator(net).inference_module(
        torch.from_numpy(encode([position], net.config.history, net.config.liberties)))
    with torch.inference_mode():
        for batch in (1, 8, 16, 64):
            planes = torch.from_numpy(encode([position] * batch, net.config.history, net.config.liberties))
            row = {"batch": batch}
            for name, module in (("positions/s", net.eval()), ("frozen positions/s", frozen)):
                module(planes)
                started, calls = time.perf_counter(), 0
                while time.perf_counter() - started < 1.5:
                    module(planes)
                    calls += 1
                row[name] = batch * calls / (time.perf_counter() - started)
            forward.append(row)
    searches, forward_frame = pd.DataFrame(rows), pd.DataFrame(forward)
    print_table(searches, f"MCTS from a middle-game {size}x{size} position, 1 thread")
    print_table(forward_frame, "network forward (6 blocks x 64 channels), 1 thread")
    settings = {"command": "OMP_NUM_THREADS=1 flock /tmp/mlcasebook-cpu.lock .venv/bin/python "
                           "benchmarks/go_mcts_speed.py", "size": size, "simulations": sims,
                "threads": torch.get_num_threads(), "load_average": os.getloadavg(), "note": args.note,
                "torch": torch.__version__}
    save(args.out, settings, {"searches": searches, "forward": forward_frame})


if __name__ == "__main__":
    main()
