"""The Go case's quick mode for `mlcasebook tour`: AlphaGo Zero on 5x5 in about two minutes.

A small network (3 blocks x 32 channels) learns from self-play only, starting from random
weights, for a fixed number of iterations (12 x 12 games). Then the raw policy (no search) and
policy + MCTS (32 simulations) each play 20 games against a uniformly random player, before and
after training, colours alternating. Measured on the shared 2-core box (20 games each, 92 s in
all): untrained, raw policy 30 % and MCTS-32 10 %; after training 90 % and 100 %.
Komi 0.5 on 5x5 (any komi is fair against a random player; 0.5 avoids draws).

Then the 9x9 network shipped in the package plays one game against GNU Go level 1 through GTP,
exactly as `mlcasebook go match ours gnugo:1` would (a few moves only in smoke mode); without
GNU Go installed that part is reported as missing, not faked.
"""

from __future__ import annotations

import html
import tempfile
import time
from pathlib import Path

import pandas as pd

from ..core.cases import CaseOutcome, CaseSpec
from ..core.errors import CasebookError
from ..core.report import Report
from .board import GoState
from .gtp import GtpClient
from .match import engine_command, play_game, save_sgf, wilson_interval
from .net import NetEvaluator, shipped_net_card
from .players import MctsPlayer, PolicyPlayer, RandomPlayer, play_players
from .train import TrainConfig, Trainer

SIZE, KOMI, SEED = 5, 0.5, 0
QUICK = dict(size=SIZE, komi=KOMI, channels=32, blocks=3, history=2, games_per_iteration=12, workers=1,
             full_simulations=48, fast_simulations=12, steps_per_iteration=80, samples_per_position=0, batch_size=64,
             gate_games=0, learning_rate=2e-3, seed=SEED)
NINE_PLAYOUTS = 64  # the shipped net's search per move in the tour game (~0.2 s a move here)
SMOKE = QUICK | dict(channels=8, blocks=1, games_per_iteration=2, full_simulations=6, fast_simulations=3,
                     steps_per_iteration=3, batch_size=16)


def win_rate_vs_random(player, games: int) -> dict:
    """``player`` against a random player, alternating colours; win rate with a Wilson interval."""
    wins = 0
    for game in range(games):
        ours_black = game % 2 == 0
        opponent = RandomPlayer(SEED + game)
        state = play_players(player if ours_black else opponent, opponent if ours_black else player, SIZE, KOMI,
                             seed=game)
        wins += state.winner() == (1 if ours_black else 2)
    low, high = wilson_interval(wins, games)
    return {"games": games, "wins": wins, "win_rate": wins / games, "ci95_low": low, "ci95_high": high}


def measure(checkpoint: Path, games: int) -> list[dict]:
    evaluator = NetEvaluator.load(checkpoint, symmetry="none")
    players = {"raw policy (no search)": PolicyPlayer(evaluator),
               "policy + MCTS, 32 simulations": MctsPlayer(evaluator, simulations=32, resign_threshold=1.0)}
    return [{"player": name} | win_rate_vs_random(player, games) for name, player in players.items()]


def shipped_net_vs_gnugo(out_dir: Path, max_moves: int) -> dict | None:
    """One 9x9 game, komi 7: the shipped network (Black, MCTS) against GNU Go level 1, both over GTP.
    None when GNU Go is not installed."""
    try:
        gnugo = engine_command("gnugo:1")
    except CasebookError:
        return None
    ours_name = f"mlcasebook, shipped 9x9 net, {NINE_PLAYOUTS} playouts"
    with GtpClient(engine_command(f"ours,playouts={NINE_PLAYOUTS}"), 120, ours_name) as ours, \
            GtpClient(gnugo, 120, "GNU Go 3.8 level 1") as opponent:
        record = play_game(ours, opponent, 9, 7.0, max_moves)
    sgf = save_sgf(record, Path(out_dir) / "go_shipped_vs_gnugo.sgf", 9, 7.0)
    board = GoState(9, 7.0)
    for colour, action in record.moves:
        if action >= 0:
            board.play(action, colour)
    return {"black": record.black, "white": record.white, "moves": len(record.moves), "result": record.result,
            "ours_won": record.winner == 1, "notes": record.notes, "board": str(board), "sgf": sgf.name,
            "ours_s_per_move": sum(record.seconds[1]) / max(len(record.seconds[1]), 1)}


def run_quick(out_dir: Path, smoke: bool = False) -> CaseOutcome:
    settings = SMOKE if smoke else QUICK
    iterations, games = (1, 2) if smoke else (12, 20)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlcasebook-go-") as folder:
        trainer = Trainer(Path(folder) / "run", TrainConfig(**settings))
        before = measure(trainer.run_dir / "best.ckpt", games)
        state = trainer.run(iterations=iterations)
        after = measure(trainer.run_dir / "best.ckpt", games)
    seconds = time.perf_counter() - started
    nine = shipped_net_vs_gnugo(out_dir, max_moves=6 if smoke else 4 * 81)
    table = pd.DataFrame([row | {"network": "untrained"} for row in before] +
                         [row | {"network": f"after {iterations} iterations"} for row in after])
    table = table[["network", "player", "games", "wins", "win_rate", "ci95_low", "ci95_high"]]
    curve = pd.DataFrame([{k: record[k] for k in ("iteration", "games", "positions", "loss_policy", "loss_value",
                                                  "loss_ownership", "mean_game_length", "black_win_rate")}
                          for record in state.history])

    report = Report(SPEC.title, case="go")
    report.text(f"Quick mode: AlphaGo Zero on a {SIZE}x{SIZE} board (komi {KOMI}), self-play only from random "
                f"weights, {iterations} iterations of {settings['games_per_iteration']} games "
                f"({state.games} games, {state.positions} positions), network {settings['blocks']} blocks x "
                f"{settings['channels']} channels; {seconds:.0f} s on this machine. Each player then meets a "
                f"uniformly random player in {games} games, colours alternating.", note=True)
    if smoke:
        report.text("Smoke run: one tiny iteration; the numbers mean nothing.", note=True)
    report.table(table, "win rate against a random player (Wilson 95 % interval)", digits=3)
    report.table(curve, "training, per iteration", digits=3)
    report.heading("The shipped 9x9 network against GNU Go")
    if nine is None:
        report.text("GNU Go is not installed (apt-get install gnugo), so the 9x9 game was not played.", note=True)
    else:
        card = shipped_net_card()
        report.text(f"Black: {nine['black']} ({nine['ours_s_per_move']:.2f} s a move). White: {nine['white']}. "
                    f"9x9, komi 7, Tromp-Taylor scoring. Result after {nine['moves']} moves: {nine['result']} "
                    f"({'our engine won' if nine['ours_won'] else 'GNU Go won'}); the game is in {nine['sgf']}. "
                    f"One game says little. The shipped network: {card['stage']}; {card['training']}. Measured: "
                    f"{card['strength']}.")
        report.html(f"<pre>{html.escape(nine['board'])}</pre>")
        for note in nine["notes"]:
            report.text(note, note=True)
    page = "go.html"
    report.write(Path(out_dir) / page)
    trained = {row["player"]: row for row in after}
    policy, search = trained["raw policy (no search)"], trained["policy + MCTS, 32 simulations"]
    return CaseOutcome(
        page=page,
        headline={"policy vs random": f"{policy['win_rate']:.0%}", "MCTS-32 vs random": f"{search['win_rate']:.0%}",
                  "train": f"{seconds:.0f} s",
                  "9x9 vs GNU Go 1": "not played" if nine is None else nine["result"]},
        numbers={"settings": settings, "iterations": iterations, "games_vs_random": games,
                 "results": table.to_dict(orient="records"), "curve": curve.to_dict(orient="records"),
                 "seconds": seconds, "shipped_net_vs_gnugo": nine})


SPEC = CaseSpec(name="go", title="Case 4 — AlphaGo Zero: self-play on a small board, a GTP engine",
                quick_budget_s=180, run_quick=run_quick)
