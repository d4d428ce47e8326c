"""`mlcasebook drive ...`: perception, behaviour cloning (PilotNet) and RL driving agents in simulators.

The driving commands (play, collect, train, evaluate) live here; the detector and PPO commands are
registered from ``cli_detect_rl`` so the two halves of the case can grow independently.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from . import cli_detect_rl

app = typer.Typer(help="Case 3 — Autopilot: vehicle detection, PilotNet from pixels, PPO with "
                  "safety/comfort/efficiency rewards.", no_args_is_help=True)
out = Console()

ENV_HELP = ("carracing (CarRacing-v3, 96x96 frames) or a highway-env scene: highway-fast, highway, racetrack, "
            "intersection, merge, roundabout.")
AGENT_HELP = ("expert (pure pursuit on CarRacing, IDM + lane changes on highway-env), pilotnet (a model from "
              "`drive train`, CarRacing), ppo (a model from `drive ppo-train`, highway-fast) or random.")
MODEL_HELP = "Checkpoint of a learned agent (pilotnet: the .pt from `drive train`; ppo: the folder of `ppo-train`)."


def _check_common(env: str, agent: str, model: Path | None) -> None:
    """Validate names and paths before any simulator starts (a typo should cost nothing)."""
    from ..core.errors import CasebookError
    from .envs import check_env_name
    from .episodes import check_agent_name

    check_env_name(env)
    check_agent_name(agent)
    if agent in ("pilotnet", "ppo"):
        if model is None:
            raise CasebookError(f"the {agent} agent needs a trained model", hint="pass --model PATH")
        if not model.exists():
            raise CasebookError(f"model not found: {model}",
                                hint="train one with `mlcasebook drive train` (pilotnet) or `drive ppo-train` (ppo)")


@app.command()
def play(
    agent: str = typer.Option("expert", help=AGENT_HELP),
    env: str = typer.Option("carracing", help=ENV_HELP),
    model: Path = typer.Option(None, help=MODEL_HELP),
    seed: int = typer.Option(100_000, help="Episode seed (evaluation episodes use 100,000 + i)."),
    steps: int = typer.Option(None, min=1, help="Stop after this many steps (default: the episode's limit)."),
    record: Path = typer.Option(None, help="Write the episode as out.gif or out.mp4, with the steering drawn."),
    every: int = typer.Option(1, min=1, help="Keep every n-th frame in the recording (smaller GIFs)."),
    detections: Path = typer.Option(None, help="A detector from `drive detect-train`: draw its boxes on the "
                                    "recording (highway-env scenes)."),
) -> None:
    """Drive one episode with an agent and print its return; record it to a GIF/MP4 if asked."""
    from ..core.errors import CasebookError
    from .episodes import make_agent, run_episode
    from .record import check_record_path, record_episode

    _check_common(env, agent, model)
    if record is not None:
        check_record_path(record)
    detector = None
    if detections is not None:
        if record is None:
            raise CasebookError("--detections draws boxes on a recording", hint="add --record out.gif")
        if env == "carracing":
            raise CasebookError("the detector is trained on highway-env frames, not CarRacing",
                                hint="use --env highway-fast (or another highway-env scene)")
        try:
            from .detector import load_detector
        except ImportError as exc:
            raise CasebookError("the vehicle detector is not available in this build",
                                hint="it lives in drive/detector.py") from exc
        detector = load_detector(detections)
    driver = make_agent(agent, env, str(model) if model else None, seed=seed)
    if record is not None:
        result = record_episode(env, driver, seed, record, max_steps=steps, detector=detector, every=every)
        out.print(f"recorded {result['frames']} frames → {record}")
    else:
        result = run_episode(env, driver, seed, max_steps=steps)
    out.print(_episode_line(agent, env, result))


def _episode_line(agent: str, env: str, result: dict) -> str:
    line = f"{agent} on {env} (seed {result['seed']}): return {result['return']:.1f} in {result['steps']} steps"
    if "lap_finished" in result:
        line += f", lap {'finished' if result['lap_finished'] else 'not finished'}, {result['departures']} departures"
    if "crashed" in result:
        line += f", {'crashed' if result['crashed'] else 'no crash'}, mean speed {result['mean_speed']:.1f} m/s"
    return line


@app.command()
def collect(
    out_path: Path = typer.Option(..., "--out", help="Where to write the demonstrations (.pt checkpoint of frames "
                                  "and expert labels)."),
    episodes: int = typer.Option(4, min=1, max=100, help="Expert laps (training seeds seed*1000 + k)."),
    recovery: bool = typer.Option(False, help="Perturb the expert's steering in bursts (DART recovery data); the "
                                  "labels stay the expert's."),
    steps: int = typer.Option(1000, min=10, help="Steps per episode at most."),
    seed: int = typer.Option(0, min=0, max=49, help="Selects the block of training seeds."),
) -> None:
    """Record CarRacing demonstrations from the expert: frames and (steer, target speed) labels."""
    from .bc import BCConfig, collect_stage

    if out_path.exists():
        from ..core.errors import CasebookError

        raise CasebookError(f"{out_path} exists", hint="choose another --out or delete it")
    config = BCConfig(max_steps=steps, seed=seed)
    stage = 1 if recovery else 0
    frames, labels, stats = collect_stage(out_path, [config.episode_seed(stage, k) for k in range(episodes)], config,
                                          "recovery" if recovery else "expert")
    returns = ", ".join(f"{s['return']:.0f}" for s in stats)
    out.print(f"{len(frames)} frames from {episodes} episodes (returns {returns}) → {out_path}")


@app.command("record-human")
def record_human(
    out_path: Path = typer.Option(..., "--out", help="Where to write the laps (same format as `collect`)."),
    laps: int = typer.Option(1, min=1, max=10, help="Laps to drive (training tracks seed*1000 + 990 + k)."),
    steps: int = typer.Option(1000, min=10, help="Frames per lap at most (CarRacing's limit is 1000)."),
    seed: int = typer.Option(0, min=0, max=49, help="Selects the block of training tracks."),
) -> None:
    """Drive CarRacing yourself (arrow keys or W A S D, Esc stops) and record the laps as PilotNet
    demonstrations; add them to training with `mlcasebook drive train --human PATH`. Needs a screen."""
    from .human import record_human_laps

    path = record_human_laps(out_path, laps=laps, seed=seed, max_steps=steps, log=out.print)
    out.print(f"laps → {path}\ntrain on them: mlcasebook drive train --out pilotnet.pt --human {path}")


@app.command()
def train(
    env: str = typer.Option("carracing", help="Only carracing: PilotNet learns from CarRacing's camera frames."),
    out_path: Path = typer.Option(..., "--out", help="Where to write the PilotNet checkpoint (.pt); the work folder "
                                  "<out>.work keeps data and rounds for resuming."),
    dagger: int = typer.Option(None, min=0, help="DAgger rounds after the first fit (default 4)."),
    demos: int = typer.Option(None, min=1, max=100, help="Expert laps (default 12)."),
    recovery: int = typer.Option(None, min=0, max=100, help="DART recovery laps (default 10)."),
    epochs: int = typer.Option(None, min=1, help="Epochs of the first fit (default 8)."),
    steps: int = typer.Option(None, min=50, help="Steps per episode at most (default 1000)."),
    minutes: float = typer.Option(None, min=0.1, help="Stop after the round that crosses this time budget."),
    seed: int = typer.Option(0, min=0, max=49, help="Seed of initialisation and of the training episodes."),
    threads: int = typer.Option(None, min=1, help="CPU threads for torch (default: torch's)."),
    human: list[Path] = typer.Option(None, "--human", help="Laps from `mlcasebook drive record-human` to add to "
                                     "the expert's demonstrations (repeat for several files)."),
) -> None:
    """Behaviour cloning: PilotNet from expert demonstrations + recovery data, then DAgger rounds.
    Rerunning the same command resumes after the last finished stage."""
    import torch

    from ..core.errors import CasebookError
    from .bc import BCConfig, train_bc
    from .envs import check_env_name

    check_env_name(env)
    if env != "carracing":
        raise CasebookError(f"PilotNet training runs on carracing only, not {env}",
                            hint="use --env carracing; highway-env scenes have the expert and PPO agents")
    if threads:
        torch.set_num_threads(threads)
    config = BCConfig(seed=seed, minutes=minutes)
    if human:
        from .human import load_human_data

        for path in human:
            load_human_data(path)  # fail now, with the file's name, not after the expert's laps
        config.human_data = tuple(str(path) for path in human)
    for name, value in (("dagger_iterations", dagger), ("demo_episodes", demos), ("recovery_episodes", recovery),
                        ("epochs", epochs), ("max_steps", steps)):
        if value is not None:
            setattr(config, name, value)
    path = train_bc(out_path, config, log=out.print)
    out.print(f"PilotNet → {path}\nmeasure it: mlcasebook drive evaluate --agent pilotnet --model {path} "
              "--episodes 100")


@app.command()
def evaluate(
    agent: str = typer.Option("expert", help=AGENT_HELP),
    env: str = typer.Option("carracing", help=ENV_HELP),
    model: Path = typer.Option(None, help=MODEL_HELP),
    episodes: int = typer.Option(100, min=1, help="Evaluation episodes, seeds 100,000 + i (never used in training)."),
    steps: int = typer.Option(None, min=1, help="Steps per episode at most (default: the episode's limit)."),
    autonomy: bool = typer.Option(False, help="CarRacing: run the episodes with the expert as safety driver and "
                                  "report PilotNet's autonomy (1 − interventions × 6 s / elapsed)."),
    json_path: Path = typer.Option(None, "--json", help="Write the summary and every episode as JSON."),
) -> None:
    """Mean ± sd return over fixed-seed episodes; CarRacing: laps finished, departures (and autonomy);
    highway-env: collision rate and mean speed."""
    from ..core.errors import CasebookError
    from ..core.report import write_json
    from .episodes import evaluate as run_evaluation
    from .episodes import make_agent

    _check_common(env, agent, model)
    if autonomy and env != "carracing":
        raise CasebookError("autonomy is measured on carracing", hint="drop --autonomy or use --env carracing")
    driver = make_agent(agent, env, str(model) if model else None)
    summary = run_evaluation(env, driver, episodes, max_steps=steps, takeover=autonomy)
    line = (f"{agent} on {env}, {episodes} episodes (seeds {summary['seeds'][0]}–{summary['seeds'][1]}): "
            f"return {summary['return_mean']:.1f} ± {summary['return_sd']:.1f}")
    if "laps_finished" in summary:
        line += f", laps finished {summary['laps_finished']}/{episodes}, departures/episode " \
                f"{summary['departures_per_episode']:.2f}"
    if "autonomy" in summary:
        line += f", autonomy {100 * summary['autonomy']:.1f} % ({summary['interventions']} interventions)"
    if "collision_rate" in summary:
        line += f", collision rate {100 * summary['collision_rate']:.1f} %, mean speed {summary['mean_speed']:.1f} m/s"
    out.print(line)
    if json_path:
        command = (f"mlcasebook drive evaluate --agent {agent} --env {env} --episodes {episodes}"
                   + (f" --model {model}" if model else "") + (" --autonomy" if autonomy else ""))
        write_json(json_path, summary | {"command": command})
        out.print(f"wrote {json_path}")


cli_detect_rl.register(app)
