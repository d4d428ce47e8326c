"""PilotNet from pixels on CarRacing-v3: the expert, behaviour cloning + recovery + DAgger, autonomy.

Stages (each writes its part of the JSON as soon as it is done; run them in one go or one by one):

- ``speed``: simulator steps/s of every env under random actions (frames rendered as an agent sees them);
- ``train``: ``bc.train_bc`` with the default ``BCConfig`` (demonstrations, DART recovery laps,
  shifted views, DAgger rounds) on training seeds; resumable (the work folder keeps every stage);
- ``expert``: the pure-pursuit expert's return over the evaluation episodes (seeds 100,000 + i);
- ``pilotnet``: the trained PilotNet's return over the same episodes, then its autonomy over
  ``--autonomy-episodes`` of them with the expert as safety driver (episodes.py says how);
- ``highway``: the highway expert (IDM + lane changes) on highway-fast: collision rate, mean speed,
  return over the same evaluation seeds (the reference for the PPO agents).

One thread, on a shared 2-core box, under the drive lock:

    flock /tmp/mlcasebook-drive.lock .venv/bin/python benchmarks/drive_pilotnet.py --stages speed train \
        --json docs/results/drive_pilotnet.json
    flock /tmp/mlcasebook-drive.lock .venv/bin/python benchmarks/drive_pilotnet.py --stages pilotnet expert \
        --episodes 30 --json docs/results/drive_pilotnet.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from mlcasebook.core.report import write_json
from mlcasebook.drive.bc import BCConfig, train_bc
from mlcasebook.drive.envs import ENV_IDS, steps_per_second
from mlcasebook.drive.episodes import evaluate, make_agent

STAGES = ("speed", "train", "expert", "pilotnet", "highway")
MACHINE_NOTE = "1 torch thread (OMP_NUM_THREADS=1) on a shared 2-core CPU box, no GPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes (seeds 100,000 + i)")
    parser.add_argument("--autonomy-episodes", type=int, default=20)
    parser.add_argument("--model", type=Path, default=Path("benchmarks/out/drive/pilotnet.pt"))
    parser.add_argument("--minutes", type=float, default=None, help="time budget of the training stage")
    parser.add_argument("--dagger", type=int, default=None,
                        help="DAgger rounds (default: BCConfig's); a larger number extends a finished run")
    parser.add_argument("--json", type=Path, default=Path("docs/results/drive_pilotnet.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    results |= {"machine": {"note": MACHINE_NOTE, "python": platform.python_version(),
                            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S")},
                "seeds": {"training": "seed*1000 + stage*100 + k, all < 50,000",
                          "evaluation": "100,000 + i, i = 0 … episodes − 1"}}

    def save(stage: str, value, command: str) -> None:
        results[stage] = value | {"command": command}
        write_json(args.json, results)
        print(f"{stage}: written to {args.json}", flush=True)

    command = "flock /tmp/mlcasebook-drive.lock .venv/bin/python benchmarks/drive_pilotnet.py --stages {}"
    if "speed" in args.stages:
        speeds = {name: round(steps_per_second(name, steps=300 if name == "carracing" else 30), 1) for name in ENV_IDS}
        print(speeds, flush=True)
        save("steps_per_second", {"random actions, frames rendered": speeds}, command.format("speed"))
    if "train" in args.stages:
        config = BCConfig(minutes=args.minutes)
        if args.dagger is not None:
            config = dataclasses.replace(config, dagger_iterations=args.dagger)
        started = time.monotonic()
        train_bc(args.model, config)
        from mlcasebook.drive.pilotnet import load_pilotnet

        _, meta = load_pilotnet(args.model)
        save("train", {"config": meta["config"], "history": meta["history"],
                       "expert_demo_return": meta["expert_demo_return"],
                       "train_seconds_this_run": time.monotonic() - started,
                       "train_seconds_total": meta["history"][-1]["seconds"] if meta["history"] else None,
                       "model": str(args.model)},
             command.format("train") + f" --model {args.model}"
             + (f" --minutes {args.minutes:g}" if args.minutes else "")
             + (f" --dagger {args.dagger}" if args.dagger is not None else ""))
    for name in ("pilotnet", "expert"):
        if name not in args.stages:
            continue
        agent = make_agent(name, "carracing", str(args.model) if name == "pilotnet" else None)
        started = time.monotonic()
        summary = evaluate("carracing", agent, args.episodes)
        summary["eval_seconds"] = time.monotonic() - started
        print({k: v for k, v in summary.items() if k != "per_episode"}, flush=True)
        if name == "pilotnet" and args.autonomy_episodes:
            run = evaluate("carracing", agent, args.autonomy_episodes, takeover=True)
            summary["autonomy_run"] = {k: v for k, v in run.items() if k != "per_episode"}
            print(summary["autonomy_run"], flush=True)
        save(name, summary, command.format(name) + f" --episodes {args.episodes}"
             + (f" --autonomy-episodes {args.autonomy_episodes}" if name == "pilotnet" else ""))
    if "highway" in args.stages:
        started = time.monotonic()
        summary = evaluate("highway-fast", make_agent("expert", "highway-fast"), args.episodes)
        summary["eval_seconds"] = time.monotonic() - started
        print({k: v for k, v in summary.items() if k != "per_episode"}, flush=True)
        save("highway_expert", summary, command.format("highway") + f" --episodes {args.episodes}")


if __name__ == "__main__":
    main()
