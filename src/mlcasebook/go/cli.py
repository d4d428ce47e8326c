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


@app.command()
def match(
    first: str = typer.Argument(..., help="Engine taking Black in game 1: gnugo:LEVEL, random[:SEED], "
                                "ours[:MODEL][,playouts=N][,time=S], or a quoted command line."),
    second: str = typer.Argument(..., help="The other engine (same forms)."),
    games: int = typer.Option(10, min=1, help="Number of games; colours alternate."),
    board: int = typer.Option(9, min=5, max=19, help="Board size."),
    komi: float = typer.Option(7.0, help="Komi (7 on 9x9 with area scoring, as in GNU Go matches)."),
    sgf_dir: Path = typer.Option(None, help="Folder for one SGF per game."),
    max_moves: int = typer.Option(None, help="Stop and score a game after this many moves (default 4·N²)."),
    timeout: float = typer.Option(300.0, help="Seconds an engine may take to answer one command."),
    json_out: Path = typer.Option(None, "--json", help="Write the summary (and per-game notes) as JSON."),
) -> None:
    """Play a match between two GTP engines, refereed and scored by our Tromp-Taylor rules."""
    from rich.console import Console
    from rich.table import Table

    from ..core.report import write_json
    from .match import run_match

    summary = run_match(first, second, games, board, komi, sgf_dir, max_moves, timeout)
    table = Table(title=f"{summary.games} games on {board}x{board}, komi {komi:g} (Tromp-Taylor)")
    for column in ("engine", "wins", "as black", "as white", "win rate [95 % CI]", "Elo vs other [95 % CI]",
                   "s/move"):
        table.add_column(column, justify="right" if column != "engine" else "left")
    low, high = summary.win_rate_95
    elo_low, elo_high = summary.elo_95
    table.add_row(summary.first, str(summary.first_wins), str(summary.first_wins_as_black),
                  str(summary.first_wins_as_white), f"{summary.win_rate:.1%} [{low:.1%}, {high:.1%}]",
                  f"{summary.elo:+.0f} [{elo_low:+.0f}, {elo_high:+.0f}]",
                  f"{summary.seconds_per_move[summary.first]:.2f}")
    table.add_row(summary.second, str(summary.second_wins), "", "", "", "",
                  f"{summary.seconds_per_move[summary.second]:.2f}")
    console = Console()
    console.print(table)
    if summary.draws:
        console.print(f"draws: {summary.draws}")
    for note in summary.notes:
        console.print(f"[dim]{note}[/]")
    if json_out is not None:
        write_json(json_out, summary.as_dict() | {"board": board, "komi": komi})
