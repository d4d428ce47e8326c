"""`mlcasebook go ...`: the GTP engine, matches between engines, training."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(help="AlphaGo-style Go engine (GTP) for small boards, and matches against GNU Go.",
                  no_args_is_help=True)


def build_player(model: Path | None, playouts: int | None, time_per_move: float | None, random_moves: bool,
                 seed: int = 0, policy_only: bool = False, rollouts: bool = False):
    """The move chooser the options ask for: random, raw policy, MCTS over a network (the shipped
    9x9 one unless ``model`` names another), or MCTS with random rollouts (no network)."""
    from ..core.errors import CasebookError
    from .players import MctsPlayer, PolicyPlayer, RandomPlayer

    if random_moves:
        return RandomPlayer(seed)
    if rollouts:
        if model is not None or policy_only:
            raise CasebookError("--rollouts searches without a network",
                                hint="drop --model / --policy-only, or drop --rollouts")
        from .mcts import RolloutEvaluator

        evaluator = RolloutEvaluator(seed=seed)
    else:
        from .net import NetEvaluator, shipped_net

        evaluator = NetEvaluator.load(model if model is not None else shipped_net(), seed=seed)
    if policy_only:
        return PolicyPlayer(evaluator)
    if playouts is None and time_per_move is None:
        playouts = 200 if rollouts else 400
    return MctsPlayer(evaluator, simulations=playouts, seconds=time_per_move, seed=seed)


@app.command()
def gtp(
    model: Path = typer.Option(None, help="Network checkpoint (from `mlcasebook go train`). Default: the 9x9 "
                               "network shipped in the package (it runs on any board size but was trained on 9x9)."),
    playouts: int = typer.Option(None, min=1, help="MCTS simulations per move (default 400 with a network, "
                                 "200 with --rollouts)."),
    time_per_move: float = typer.Option(None, min=0.01, help="Seconds per move; with --playouts, whichever "
                                        "ends first. The GTP clock (time_left) can shorten it."),
    random_moves: bool = typer.Option(False, "--random", help="Play uniformly random legal moves (a baseline)."),
    rollouts: bool = typer.Option(False, "--rollouts", help="Search with random rollouts instead of a network "
                                  "(weak; the pre-AlphaGo baseline)."),
    policy_only: bool = typer.Option(False, help="Play the network's most probable move, no search (the "
                                     "chapter's 'policy network alone')."),
    size: int = typer.Option(9, help="Initial board size (the controller may change it with boardsize)."),
    komi: float = typer.Option(7.0, help="Initial komi (the controller may change it with komi)."),
    seed: int = typer.Option(0, help="Random seed of the player."),
) -> None:
    """Speak GTP v2 on stdin/stdout: add this command as an engine in Sabaki, GoGui or a match runner."""
    from .gtp import GtpEngine

    player = build_player(model, playouts, time_per_move, random_moves, seed, policy_only, rollouts)
    GtpEngine(player, seconds_per_move=time_per_move, size=size, komi=komi).serve(sys.stdin, sys.stdout)


@app.command()
def analysis(
    model: Path = typer.Option(None, help="Network checkpoint. Default: the 9x9 network shipped in the package."),
    visits: int = typer.Option(200, min=1, help="MCTS simulations per analysed position when a query gives "
                               "no maxVisits."),
    seed: int = typer.Option(0, help="Random seed of the search."),
) -> None:
    """Speak KataGo's JSON analysis-engine protocol on stdin/stdout: the way KaTrain talks to an engine.

    In KaTrain: set the `altcommand` entry of the `engine` section of its config.json (KaTrain's
    engine command override) to e.g. `/path/to/.venv/bin/mlcasebook go analysis --visits 200`.
    Scoring is always Tromp-Taylor area; details in docs/go.md.
    """
    from .analysis import AnalysisEngine
    from .net import NetEvaluator, shipped_net

    evaluator = NetEvaluator.load(model if model is not None else shipped_net(), seed=seed)
    AnalysisEngine(evaluator, visits=visits, seed=seed).serve(sys.stdin, sys.stdout)


@app.command()
def match(
    first: str = typer.Argument(..., help="Engine taking Black in game 1: gnugo:LEVEL, random[:SEED], "
                                "ours[:MODEL][,playouts=N][,time=S][,policy|rollouts], or a quoted command line."),
    second: str = typer.Argument(..., help="The other engine (same forms)."),
    games: int = typer.Option(10, min=1, help="Number of games; colours alternate."),
    board: int = typer.Option(9, min=5, max=19, help="Board size."),
    komi: float = typer.Option(7.0, help="Komi (7 on 9x9 with area scoring, as in GNU Go matches)."),
    sgf_dir: Path = typer.Option(None, help="Folder for one SGF per game."),
    max_moves: int = typer.Option(None, help="Stop and score a game after this many moves (default 4·N²)."),
    timeout: float = typer.Option(300.0, help="Seconds an engine may take to answer one command."),
    json_out: Path = typer.Option(None, "--json", help="Write the summary (and per-game notes) as JSON."),
    parallel: int = typer.Option(1, min=1, help="Games played at once, each with its own engine processes "
                                 "(our engine gets another seed per stream). One per core."),
    note: str = typer.Option("", help="What the engines are, kept in the --json file."),
) -> None:
    """Play a match between two GTP engines, refereed and scored by our Tromp-Taylor rules."""
    from rich.console import Console
    from rich.table import Table

    from ..core.report import write_json
    from .match import run_match

    summary = run_match(first, second, games, board, komi, sgf_dir, max_moves, timeout, parallel)
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
    if summary.distinct_games < summary.games:
        console.print(f"[yellow]only {summary.distinct_games} distinct games of {summary.games}: the engines "
                      "repeat themselves, so the interval above is too narrow[/]")
    for message in summary.notes:
        console.print(f"[dim]{message}[/]")
    if json_out is not None:
        import os
        import shlex
        import time

        # enough to reproduce the figure: the command line (with the thread setting) and when it ran
        threads = os.environ.get("OMP_NUM_THREADS")
        args = [first, second, "--games", str(games), "--board", str(board), "--komi", f"{komi:g}"]
        args += ["--parallel", str(parallel)] if parallel > 1 else []
        args += ["--sgf-dir", str(sgf_dir)] if sgf_dir is not None else []
        args += ["--max-moves", str(max_moves)] if max_moves is not None else []
        args += ["--json", str(json_out)] + (["--note", note] if note else [])
        command = (f"OMP_NUM_THREADS={threads} " if threads else "") + "mlcasebook go match " + \
            " ".join(shlex.quote(a) for a in args)
        write_json(json_out, summary.as_dict() | {"board": board, "komi": komi, "command": command, "note": note,
                                                  "date": time.strftime("%Y-%m-%d %H:%M")})


@app.command()
def corpus(
    out: Path = typer.Option(Path("data/go/gnugo"), help="Folder for the SGF files."),
    games: int = typer.Option(100, min=1, help="Number of games."),
    level: int = typer.Option(10, min=0, max=10, help="GNU Go level (10 is its strongest)."),
    board: int = typer.Option(9, min=5, max=19, help="Board size."),
    komi: float = typer.Option(7.0, help="Komi."),
    random_moves: int = typer.Option(4, min=0, help="Random opening moves, so that GNU Go's games differ."),
    seed: int = typer.Option(0, help="Seed of the random openings (use another seed to add games)."),
) -> None:
    """Generate the AlphaGo pipeline's 'expert games': GNU Go against itself, saved as SGF."""
    from .corpus import generate_gnugo_games

    paths = generate_gnugo_games(out, games, level, board, komi, random_moves, seed)
    typer.echo(f"wrote {len(paths)} games to {out}")


@app.command()
def train(
    run: Path = typer.Option(Path("runs/go/zero9"), help="Run folder; an existing one is resumed."),
    iterations: int = typer.Option(None, min=1, help="Iterations to run now (self-play, training, gating)."),
    hours: float = typer.Option(None, min=0.0, help="Wall-clock budget for this session (checked between "
                                "iterations)."),
    pretrain_sgf: Path = typer.Option(None, help="AlphaGo pipeline: first learn from the SGF games in this "
                                      "folder (e.g. from `mlcasebook go corpus`). Without it: AlphaGo Zero."),
    pretrain_steps: int = typer.Option(2000, min=1, help="Supervised steps on the SGF games."),
    pretrain_holdout: float = typer.Option(0.05, min=0.0, max=0.5, help="Share of the SGF games kept out of "
                                           "pretraining to measure move-prediction accuracy."),
    pretrain_games: int = typer.Option(None, min=1, help="Only the first N SGF files in name order (a smaller "
                                       "corpus, e.g. one `go corpus --seed`)."),
    corpus_cpu_hours: float = typer.Option(0.0, min=0.0, help="CPU-hours that made the SGF games (a generated "
                                           "corpus: about 10 CPU-seconds a GNU Go level-10 game on 9x9), added "
                                           "to the run's compute so comparisons at equal compute count the "
                                           "expert data; 0 for human games."),
    board: int = typer.Option(None, min=5, max=19, help="Board size (new runs; default 9)."),
    komi: float = typer.Option(None, help="Komi (default 7)."),
    channels: int = typer.Option(None, min=4, help="Network width (default 64)."),
    blocks: int = typer.Option(None, min=1, help="Residual blocks (default 6)."),
    games_per_iteration: int = typer.Option(None, min=1, help="Self-play games per iteration (default 32)."),
    workers: int = typer.Option(None, min=1, help="Self-play processes (default 2)."),
    full_simulations: int = typer.Option(None, min=1, help="Simulations of a full search (default 200)."),
    fast_simulations: int = typer.Option(None, min=1, help="Simulations of a fast search (default 40)."),
    steps_per_iteration: int = typer.Option(None, min=1, help="Most training steps per iteration (default 200)."),
    samples_per_position: float = typer.Option(None, min=0.0, help="Training samples per new self-play position, "
                                               "which sets the steps of an iteration (default 8, KataGo's "
                                               "synchronous value; 0: always --steps-per-iteration)."),
    learning_rate: float = typer.Option(None, min=0.0, help="Learning rate of self-play training (default 1e-3; "
                                        "lower it to fine-tune a pretrained network, whose own schedule ended "
                                        "near 0)."),
    gate_games: int = typer.Option(None, min=0, help="Gating games candidate vs best (default 20; 0: always "
                                   "promote)."),
    seed: int = typer.Option(None, help="Seed (default 0)."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log metrics per iteration to MLflow."),
) -> None:
    """Train by self-play (AlphaGo Zero), optionally after supervised pretraining (AlphaGo). Resumable:
    stop it at any time (even kill -9) and run the same command again to continue."""
    from dataclasses import asdict

    from ..core.errors import CasebookError
    from .train import TrainConfig, Trainer

    given = {"size": board, "komi": komi, "channels": channels, "blocks": blocks,
             "games_per_iteration": games_per_iteration, "workers": workers, "full_simulations": full_simulations,
             "fast_simulations": fast_simulations, "steps_per_iteration": steps_per_iteration,
             "samples_per_position": samples_per_position, "learning_rate": learning_rate,
             "gate_games": gate_games, "seed": seed}
    given = {k: v for k, v in given.items() if v is not None}
    if iterations is None and hours is None and pretrain_sgf is None:
        raise CasebookError("say how long to train", hint="--iterations N or --hours H")
    if pretrain_sgf is None and (pretrain_games is not None or corpus_cpu_hours):
        raise CasebookError("--pretrain-games and --corpus-cpu-hours describe the SGF corpus",
                            hint="add --pretrain-sgf FOLDER, or drop them")
    if (run / "state.json").exists():
        trainer = Trainer(run, track_mlflow=track)
        stored = asdict(trainer.config)
        changed = sorted(k for k, v in given.items() if stored[k] != v)
        if changed:
            raise CasebookError(f"{run} was started with other settings ({', '.join(changed)})",
                                hint="resume without those options, or use a new --run folder")
    else:
        trainer = Trainer(run, TrainConfig(**given), track_mlflow=track)
    if pretrain_sgf is not None:
        from .corpus import read_sgf_examples

        config = trainer.config
        examples, held_out, skipped = read_sgf_examples(pretrain_sgf, config.size, config.history,
                                                        config.liberties, pretrain_holdout, pretrain_games)
        metrics = trainer.pretrain(examples, pretrain_steps, held_out, corpus_cpu_hours * 3600)
        typer.echo(f"pretrained on {len(examples)} positions ({len(skipped)} files skipped): "
                   f"policy loss {metrics['loss_policy']:.3f}, value loss {metrics['loss_value']:.3f}")
        if held_out is not None:
            typer.echo(f"held-out games ({len(held_out)} positions): move prediction "
                       f"{metrics['held_out_policy_top1']:.1%}, policy loss {metrics['held_out_policy_loss']:.3f}, "
                       f"value MSE {metrics['held_out_value_mse']:.3f} (winner's sign right "
                       f"{metrics['held_out_value_sign_accuracy']:.1%})")
    if iterations is None and hours is None:
        return  # pretraining only
    state = trainer.run(iterations, hours)
    last = state.history[-1] if state.history else {}
    typer.echo(f"iteration {state.iteration}: {state.games} games, {state.positions} positions, generation "
               f"{state.generation}, {state.cpu_seconds / 3600:.2f} CPU-hours; last gate win rate "
               f"{last.get('gate_win_rate', float('nan')):.2f}; best net: {run / 'best.ckpt'}")
