"""The driving case's quick mode for `mlcasebook tour`: a short PilotNet behaviour-cloning run on CarRacing.

The expert (pure pursuit on the track centre line) drives a few laps on training seeds; their
frames and its actions, plus a lap with its steering perturbed (DART recovery data) and PilotNet's
shifted views, train PilotNet from pixels for a few epochs. Then the expert and the clone each drive
the same evaluation track (seed 100,000, never trained on) for a fixed number of steps; the page
shows both returns, their steering traces and a strip of the clone's camera frames. One CPU thread.
The full recipe (more laps, DAgger rounds, 100 evaluation episodes, autonomy) is
`mlcasebook drive train` and `benchmarks/drive_pilotnet.py`; its figures are in docs/RESULTS.md.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..core.cases import CaseOutcome, CaseSpec
from ..core.report import Report

# (quick, smoke) sizes
DEMO_EPISODES = (3, 1)
RECOVERY_EPISODES = (1, 0)
TRAIN_STEPS = (450, 40)   # steps per training episode
EPOCHS = (6, 1)
EVAL_STEPS = (450, 30)    # steps of the expert-vs-clone episode
SEED = 0


def _drive(agent_name: str, model: str | None, steps: int) -> tuple[dict, list[np.ndarray], np.ndarray]:
    """One evaluation episode (seed 100,000): figures, camera frames, steering commands."""
    from .envs import eval_seed
    from .episodes import make_agent, run_episode

    frames, steering = [], []

    def keep(env, obs, action, info):
        frames.append(obs)
        steering.append(float(np.asarray(action)[0]))

    result = run_episode("carracing", make_agent(agent_name, "carracing", model), eval_seed(0), steps, on_frame=keep)
    return result, frames, np.asarray(steering)


def _figures(report: Report, frames: list[np.ndarray], traces: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.6))
    for name, trace in traces.items():
        ax.plot(np.arange(len(trace)) / 50, trace, label=name, lw=1)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("steering (−1 left, +1 right)")
    ax.legend()
    report.figure(fig, "Steering on the evaluation track (seed 100,000): expert vs PilotNet clone")
    picks = np.linspace(0, len(frames) - 1, num=min(6, len(frames))).astype(int)
    fig, axes = plt.subplots(1, len(picks), figsize=(1.6 * len(picks), 1.8))
    for ax, index in zip(np.atleast_1d(axes), picks, strict=True):
        ax.imshow(frames[index])
        ax.set_title(f"{index / 50:.1f} s", fontsize=8)
        ax.axis("off")
    report.figure(fig, "What PilotNet sees: its 96x96 camera frames along the episode (dashboard strip at the "
                  "bottom; only the speed bar reaches the network)")


def run_quick(out_dir: Path, smoke: bool = False) -> CaseOutcome:
    import torch

    from .bc import BCConfig, train_bc

    size = 1 if smoke else 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        config = BCConfig(demo_episodes=DEMO_EPISODES[size], recovery_episodes=RECOVERY_EPISODES[size],
                          dagger_iterations=0, max_steps=TRAIN_STEPS[size], epochs=EPOCHS[size], seed=SEED)
        with tempfile.TemporaryDirectory(prefix="drive-tour-") as work:
            model = train_bc(Path(work) / "pilotnet.pt", config, log=lambda *_: None)
            train_seconds = time.perf_counter() - started
            expert, _, expert_steer = _drive("expert", None, EVAL_STEPS[size])
            clone, frames, clone_steer = _drive("pilotnet", str(model), EVAL_STEPS[size])
            from .pilotnet import load_pilotnet

            history = load_pilotnet(model)[1]["history"]
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started

    report = Report(SPEC.title, case="drive")
    report.text(f"Quick mode: PilotNet (5 conv + 3 FC layers, 96x96 RGB in, steering and a target speed out; a "
                f"speedometer controller turns the speed into gas/brake) cloned "
                f"from {config.demo_episodes} expert laps and {config.recovery_episodes} recovery lap(s) of at most "
                f"{config.max_steps} steps on training seeds, with shifted views (±{config.max_shift_px} px, "
                f"steering corrected), {config.epochs} epochs, no DAgger; {history[-1]['frames']} frames. Then the "
                f"expert and the clone drive the evaluation track of seed 100,000 for {EVAL_STEPS[size]} steps "
                f"({EVAL_STEPS[size] / 50:.0f} s). A full lap is ~1000 steps, so these returns are partial: "
                f"1000/N per tile reached − 0.1 per frame. Training {train_seconds:.0f} s, all {seconds:.0f} s, "
                f"one CPU thread. The full recipe (12 laps, 10 recovery laps, 4 DAgger rounds, 100 evaluation "
                "episodes, autonomy) is `mlcasebook drive train` + `benchmarks/drive_pilotnet.py`.", note=True)
    if smoke:
        report.text("Smoke run: a few dozen frames; the numbers mean nothing.", note=True)
    import pandas as pd

    report.table(pd.DataFrame([
        {"driver": "expert (pure pursuit, privileged state)", "return": expert["return"],
         "departures from the road": expert["departures"], "steps": expert["steps"]},
        {"driver": "PilotNet clone (pixels only)", "return": clone["return"],
         "departures from the road": clone["departures"], "steps": clone["steps"]},
    ]), "Same evaluation track, same number of steps", digits=1)
    _figures(report, frames, {"expert": expert_steer, "PilotNet": clone_steer})
    page = "drive.html"
    report.write(Path(out_dir) / page)
    return CaseOutcome(
        page=page,
        headline={"expert return": f"{expert['return']:.0f}", "PilotNet return": f"{clone['return']:.0f}",
                  "steps": str(EVAL_STEPS[size])},
        numbers={"expert": expert, "pilotnet": clone, "train_history": history, "train_seconds": train_seconds,
                 "seconds": seconds, "eval_steps": EVAL_STEPS[size], "config": config.__dict__})


SPEC = CaseSpec(name="drive", title="Case 3 — Autopilot: PilotNet from pixels on CarRacing (behaviour cloning)",
                quick_budget_s=120, run_quick=run_quick)
