"""The detector and PPO commands of `mlcasebook drive` (registered on the case's app by ``cli.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

out = Console()


def _write_json(path: Path | None, record: dict) -> None:
    if path:
        from ..core.report import write_json

        write_json(path, record)
        out.print(f"wrote {path}")


def detect_train(
    out_path: Path = typer.Option(..., "--out", help="Where to write the detector checkpoint (.pt)."),
    frames: int = typer.Option(None, min=16, help="Training frames rendered from training seeds 0+ "
                               "(default 800; cached after the first run)."),
    epochs: int = typer.Option(None, min=1, help="Training epochs (default 10)."),
    downscale: int = typer.Option(None, min=1, max=8, help="Average-pool the 600x150 frames by this factor "
                                  "before the network (default 2)."),
    minutes: float = typer.Option(None, min=0.1, help="Stop after the epoch that crosses this training time "
                                  "and write the model as it is."),
    seed: int = typer.Option(0, help="Seed of initialisation and batch order."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted run of the same "
                                "command from its last finished epoch."),
) -> None:
    """Train the CenterNet-style vehicle detector on highway-env frames labelled from the simulator state."""
    from .detector import DetectorConfig, train_detector

    config = DetectorConfig(seed=seed)
    for name, value in (("frames", frames), ("epochs", epochs), ("downscale", downscale)):
        if value is not None:
            setattr(config, name, value)
    record = train_detector(out_path, config, minutes=minutes, resume=resume)
    out.print(f"detector → {out_path} ({record['epochs_done']} epochs, {record['train_s']} s, "
              f"{record['frames']} frames)\nmeasure it: mlcasebook drive detect-eval --model {out_path}")


def detect_eval(
    model: Path = typer.Option(..., "--model", help="A checkpoint from `mlcasebook drive detect-train`."),
    frames: int = typer.Option(300, min=10, help="Frames from held-out seeds 50,000+ (5 per episode)."),
    json_path: Path = typer.Option(None, "--json", help="Write the figures as JSON."),
) -> None:
    """mAP@0.5 and @0.75 of a detector on frames from held-out seeds, and its inference speed."""
    from .detector import evaluate_detector, load_detector

    figures = evaluate_detector(load_detector(model), frames=frames)
    out.print(f"mAP@0.5 {figures['map50']:.3f}  mAP@0.75 {figures['map75']:.3f}  on {figures['frames']} frames "
              f"({figures['vehicles']} vehicles, seeds {figures['seeds']}); {figures['inference_fps']} frames/s")
    _write_json(json_path, figures | {"model": str(model),
                                      "command": f"mlcasebook drive detect-eval --model {model} --frames {frames}"})


def ppo_train(
    reward: str = typer.Option("ours", help="ours (safety + comfort + efficiency terms) or default "
                               "(highway-env's own reward)."),
    timesteps: int = typer.Option(20_000, min=1, help="Environment steps in total (a resumed run counts the "
                                  "steps already done)."),
    out_path: Path = typer.Option(..., "--out", help="Folder for model.zip and state.json."),
    seed: int = typer.Option(0, min=0, max=40, help="Seed of the policy and of the training episodes."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out up to --timesteps."),
    w_collision: float = typer.Option(None, help="Weight of the collision term (default -5)."),
    w_ttc: float = typer.Option(None, help="Weight of the time-to-collision term (default -1)."),
    w_jerk: float = typer.Option(None, help="Weight of the jerk term (default -0.1)."),
    w_steering: float = typer.Option(None, help="Weight of the steering-rate term (default -0.1)."),
    w_speed: float = typer.Option(None, help="Weight of the speed term (default 1)."),
    w_progress: float = typer.Option(None, help="Weight of the progress term (default 0)."),
    warm_start: int = typer.Option(0, "--warm-start", min=0, max=100,
                                   help="First clone the highway expert from this many episodes into the "
                                        "policy, then 3 DAgger rounds, then fine-tune by PPO (0: PPO from "
                                        "scratch)."),
) -> None:
    """Train PPO on highway-fast (kinematics state, not pixels) under our reward or the default one."""
    from dataclasses import replace

    from ..core.errors import CasebookError
    from .rewards import RewardWeights
    from .rl import REWARDS, train_ppo

    if reward not in REWARDS:
        raise CasebookError(f"unknown reward '{reward}'", hint=f"choose one of: {', '.join(REWARDS)}")
    given = {"collision": w_collision, "ttc": w_ttc, "jerk": w_jerk, "steering_rate": w_steering,
             "speed": w_speed, "progress": w_progress}
    given = {name: value for name, value in given.items() if value is not None}
    if given and reward != "ours":
        raise CasebookError("--w-* weights apply to --reward ours only", hint="drop them, or pass --reward ours")
    weights = replace(RewardWeights(), **given)
    state = train_ppo(reward=reward, timesteps=timesteps, out=out_path, seed=seed, weights=weights, resume=resume,
                      warm_start_episodes=warm_start)
    out.print(f"PPO ({reward} reward) → {out_path}: {state['timesteps_done']} steps, {state['train_s']} s\n"
              f"measure it: mlcasebook drive ppo-eval --model {out_path} --episodes 100")


def ppo_eval(
    model: Path = typer.Option(..., "--model", help="A folder from `mlcasebook drive ppo-train`."),
    episodes: int = typer.Option(100, min=1, max=10_000, help="Episodes with seeds 100,000 + i."),
    json_path: Path = typer.Option(None, "--json", help="Write the figures as JSON."),
) -> None:
    """Collision rate, mean speed, mean |jerk| and returns of a PPO agent over fixed evaluation seeds."""
    from .rl import evaluate_highway, load_ppo_agent

    agent = load_ppo_agent(model)
    figures = evaluate_highway(agent, episodes=episodes)
    out.print(f"collision rate {figures['collision_rate']:.1%} (95 % CI {figures['collision_rate_95ci']}), "
              f"mean speed {figures['mean_speed']:.1f} m/s, mean |jerk| {figures['mean_abs_jerk']:.2f} m/s³, "
              f"return {figures['return_default']:.2f} (default reward) / {figures['return_ours']:.2f} (ours) "
              f"over {figures['episodes']} episodes")
    _write_json(json_path, figures | {"model": str(model), "training": agent.state,
                                      "command": f"mlcasebook drive ppo-eval --model {model} --episodes {episodes}"})
    if not json_path:
        out.print_json(json.dumps({k: v for k, v in figures.items() if k != "weights"}))


def register(app: typer.Typer) -> None:
    """Add the perception and reinforcement-learning commands to ``app``."""
    app.command("detect-train")(detect_train)
    app.command("detect-eval")(detect_eval)
    app.command("ppo-train")(ppo_train)
    app.command("ppo-eval")(ppo_eval)
