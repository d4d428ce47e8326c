"""`mlcasebook go ...`: the GTP engine, matches between engines, training."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(help="AlphaGo-style Go engine (GTP) for small boards, and matches against GNU Go.",
                  no_args_is_help=True)


def build_player(model: Path | None, playouts: int | None, time_per_move: float | None, random_moves: bool,
                 seed: int = 0):
    """The move chooser the options ask for: random, MCTS over a network, or MCTS with rollouts."""
    from .mcts import RolloutEvaluator
    from .players import MctsPlayer, RandomPlayer

    if random_moves:
        return RandomPlayer(seed)
    if model is not None:
        from .net import NetEvaluator

        evaluator = NetEvaluator.load(model)
    else:
        evaluator = RolloutEvaluator(seed=seed)
    if playouts is None and time_per_move is None:
        playouts = 400 if model is not None else 200
    return MctsPlayer(evaluator, simulations=playouts, seconds=time_per_move, seed=seed)


@app.command()
def gtp(
    model: Path = typer.Option(None, help="Network checkpoint (from `mlcasebook go train`). Without it the "
                               "engine searches with random rollouts (weak, needs no training)."),
    playouts: int = typer.Option(None, min=1, help="MCTS simulations per move (default 400 with a model, "
                                 "200 with rollouts)."),
    time_per_move: float = typer.Option(None, min=0.01, help="Seconds per move; with --playouts, whichever "
                                        "ends first. The GTP clock (time_left) can shorten it."),
    random_moves: bool = typer.Option(False, "--random", help="Play uniformly random legal moves (a baseline)."),
    size: int = typer.Option(9, help="Initial board size (the controller may change it with boardsize)."),
    komi: float = typer.Option(7.0, help="Initial komi (the controller may change it with komi)."),
    seed: int = typer.Option(0, help="Random seed of the player."),
) -> None:
    """Speak GTP v2 on stdin/stdout: add this command as an engine in Sabaki, GoGui or a match runner."""
    from .gtp import GtpEngine

    player = build_player(model, playouts, time_per_move, random_moves, seed)
    GtpEngine(player, seconds_per_move=time_per_move, size=size, komi=komi).serve(sys.stdin, sys.stdout)
