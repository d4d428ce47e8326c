"""Behaviour cloning of the CarRacing expert into PilotNet: demonstrations, recovery data, DAgger.

Three sources of (frame, expert action) pairs, all on training seeds (``envs.TRAIN_SEEDS``):

1. Demonstrations: the expert drives; every frame is labelled with what it did.
2. Recovery data. PilotNet's answer to "a cloner never sees the car off-centre" was two side
   cameras and synthetic shifts/rotations with corrected steering. Here both kinds exist:
   - real recovery (DART, Laskey et al. 2017): the expert drives but its steering is perturbed
     by bursts of noise; the frames show the car drifting off-line and the labels are what the
     expert *would* do there, so the cloner learns to come back;
   - synthetic shifts (PilotNet's augmentation) at training time: the road is shifted sideways by
     up to ``max_shift_px`` pixels (the car and the dashboard stay in place) and the steering label
     is corrected by ``steer_per_px`` per pixel — the pure-pursuit correction for a lateral
     offset at a typical speed, see ``SHIFT_STEER_PER_PX``.
3. DAgger (Ross et al. 2011): the learner drives, the expert labels every state it visits, the
   data are aggregated and the learner retrained — the states the learner's own mistakes lead to.

``train_bc`` runs the whole recipe, resumably: each stage's data and the model after each round go
to a checkpoint folder, and a rerun of the same command skips what is done.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import CasebookError
from .envs import TRAIN_SEEDS, make_env
from .experts import CarRacingExpert
from .pilotnet import PilotNet, PilotNetAgent, labels_from_expert, save_pilotnet

# CarRacing's 96x96 state view: 1000 px window scaled to 96 → 16.2 px/m · 0.096 ≈ 1.56 px per metre
# sideways. Pure pursuit at 60 m/s (lookahead 15 m) steers 2 L d / Ld² / 0.4 ≈ 0.07 per metre of
# offset → ≈ 0.05 per pixel.
SHIFT_STEER_PER_PX = 0.05
# where the car is drawn in the 96x96 frame (rows, cols): kept in place when the road is shifted
CAR_ROWS, CAR_COLS = slice(64, 80), slice(43, 53)
DASHBOARD_ROW = 84


@dataclass
class BCConfig:
    demo_episodes: int = 12          # clean expert laps
    recovery_episodes: int = 10      # expert laps with perturbed steering (DART)
    dagger_iterations: int = 4
    dagger_episodes: int = 4         # learner-driven laps labelled by the expert, per iteration
    max_steps: int = 1000            # per episode (CarRacing's own limit)
    frame_stride: int = 2            # keep every n-th frame: neighbours are near-duplicates
    epochs: int = 8                  # on the demonstrations + recovery data
    dagger_epochs: int = 4           # after each aggregation
    batch_size: int = 64
    lr: float = 1e-3
    max_shift_px: int = 5            # synthetic shift augmentation (0: off)
    steer_per_px: float = SHIFT_STEER_PER_PX
    noise_steer: float = 0.6         # DART perturbation: steering offset during a burst
    noise_burst_steps: int = 12
    noise_every_steps: int = 60
    seed: int = 0                    # training seeds are seed * 1000 + k, all < 50,000
    minutes: float | None = None     # stop training rounds when this wall-clock budget is spent
    human_data: tuple[str, ...] = ()  # files from `drive record-human`, added to the demonstrations

    def episode_seed(self, stage: int, k: int) -> int:
        seed = self.seed * 1000 + stage * 100 + k
        if seed not in TRAIN_SEEDS:
            raise CasebookError(f"training seed {seed} leaves the training range {TRAIN_SEEDS}",
                                hint="use --seed below 49 and fewer than 100 episodes per stage")
        return seed


def _noisy_steering(config: BCConfig, rng: np.random.Generator):
    """A closure adding DART-style bursts of constant steering offset to an action."""
    state = {"left": 0, "offset": 0.0, "next": int(rng.integers(20, config.noise_every_steps))}

    def perturb(step: int, action: np.ndarray) -> np.ndarray:
        if state["left"] == 0 and step >= state["next"]:
            state["left"] = config.noise_burst_steps
            state["offset"] = float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * config.noise_steer)
            state["next"] = step + config.noise_burst_steps + int(rng.integers(20, config.noise_every_steps))
        if state["left"] > 0:
            state["left"] -= 1
            action = action.copy()
            action[0] = np.clip(action[0] + state["offset"], -1, 1)
        return action

    return perturb


def collect_episode(seed: int, config: BCConfig, mode: str = "expert", learner: PilotNet | None = None,
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """One CarRacing episode; returns (frames uint8 (n, 96, 96, 3), labels (n, 2): the expert's
    steering and target speed (``pilotnet.labels_from_expert``), stats).

    ``mode``: ``expert`` (clean demonstration), ``recovery`` (expert with perturbed steering) or
    ``dagger`` (``learner`` drives). The label is always the expert's action for the frame."""
    env = make_env("carracing", max_steps=config.max_steps)
    obs, _ = env.reset(seed=seed)
    expert = CarRacingExpert()
    agent = PilotNetAgent(learner) if mode == "dagger" else None
    perturb = _noisy_steering(config, rng or np.random.default_rng(seed)) if mode == "recovery" else None
    frames, steering, speeds, total = [], [], [], 0.0
    steps = 0
    for steps in range(1, config.max_steps + 1):
        label = expert.act(env, obs)
        if (steps - 1) % config.frame_stride == 0:
            frames.append(obs)
            steering.append(label[0])
            speeds.append(expert.target_speed_)
        if mode == "dagger":
            action = agent.act(env, obs)
        elif mode == "recovery":
            action = perturb(steps, label)
        else:
            action = label
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        if terminated or truncated:
            break
    env.close()
    return (np.asarray(frames, dtype=np.uint8), labels_from_expert(np.asarray(steering), np.asarray(speeds)),
            {"seed": seed, "mode": mode, "return": total, "steps": steps})


def shift_augment(frames: torch.Tensor, targets: torch.Tensor, max_shift: int, steer_per_px: float,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """PilotNet's shifted views: move the road sideways by a random whole number of pixels and
    correct the steering label. Content moved right means the car sits left of where it was, so it
    must steer right (+). The car sprite and the dashboard are kept where the renderer puts them."""
    if max_shift <= 0:
        return frames, targets
    shifts = torch.randint(-max_shift, max_shift + 1, (len(frames),), generator=generator)
    out = frames.clone()
    width = frames.shape[2]
    for shift in shifts.unique().tolist():
        if shift == 0:
            continue
        rows = shifts == shift
        road = frames[rows, :DASHBOARD_ROW]
        # edge columns are repeated into the gap (grass at the edge of a car-centred view)
        index = torch.clamp(torch.arange(width) - shift, 0, width - 1)
        shifted = road[:, :, index]
        shifted[:, CAR_ROWS, CAR_COLS] = road[:, CAR_ROWS, CAR_COLS]
        out[rows, :DASHBOARD_ROW] = shifted
    targets = targets.clone()
    targets[:, 0] = torch.clamp(targets[:, 0] + steer_per_px * shifts.float(), -1, 1)
    return out, targets


def bc_loss(model: PilotNet, frames: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE on (steer, target speed / SPEED_SCALE); steering weighted double — it keeps the car on the road."""
    errors = (model(frames) - targets) ** 2
    return (errors[:, 0] * 2.0 + errors[:, 1]).mean()


def fit(model: PilotNet, optimizer: torch.optim.Optimizer, frames: np.ndarray, targets: np.ndarray,
        epochs: int, config: BCConfig, generator: torch.Generator, description: str = "BC",
        deadline: float | None = None) -> list[float]:
    """Minibatch Adam on all pairs for ``epochs``; returns the mean training loss per epoch."""
    from ..core.progress import bar

    frames_t, targets_t = torch.from_numpy(frames), torch.from_numpy(targets).float()
    n = len(frames_t)
    batches = (n + config.batch_size - 1) // config.batch_size
    losses = []
    model.train()
    with bar(epochs * batches, f"{description}: {n} frames") as advance:
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, config.batch_size):
                rows = order[start:start + config.batch_size]
                batch, target = shift_augment(frames_t[rows], targets_t[rows], config.max_shift_px,
                                              config.steer_per_px, generator)
                loss = bc_loss(model, batch, target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(rows)
                advance(1)
            losses.append(total / n)
            if deadline is not None and time.monotonic() > deadline:
                break
    model.eval()
    return losses


def _save_data(path: Path, frames: np.ndarray, labels: np.ndarray, stats: list[dict]) -> None:
    from ..core.checkpoint import save_checkpoint

    save_checkpoint(path, {"frames": frames, "labels": labels}, {"episodes": stats})


def _load_data(path: Path) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    from ..core.checkpoint import load_checkpoint

    arrays, meta = load_checkpoint(path)
    return arrays["frames"], arrays["labels"], meta["episodes"]


def collect_stage(path: Path, seeds: list[int], config: BCConfig, mode: str, learner: PilotNet | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Episodes of one kind, cached at ``path`` (a rerun reads them back)."""
    from ..core.progress import track

    if path.is_file():
        return _load_data(path)
    frames, labels, stats = [], [], []
    for seed in track(seeds, f"{mode} episodes"):
        f, y, s = collect_episode(seed, config, mode, learner, np.random.default_rng(seed))
        frames.append(f)
        labels.append(y)
        stats.append(s)
    frames_all, labels_all = np.concatenate(frames), np.concatenate(labels).astype(np.float32)
    _save_data(path, frames_all, labels_all, stats)
    return frames_all, labels_all, stats


def _save_round(path: Path, model: PilotNet, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    """Model + Adam moments as flat tensors (the checkpoint format holds no nested objects)."""
    from ..core.checkpoint import save_checkpoint

    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    for i, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            arrays[f"adam.{i}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    save_checkpoint(path, arrays, meta)


def _load_round(path: Path, model: PilotNet, optimizer: torch.optim.Optimizer) -> dict:
    from ..core.checkpoint import load_checkpoint

    arrays, meta = load_checkpoint(path)
    model.load_state_dict({k[len("model."):]: torch.from_numpy(v) for k, v in arrays.items()
                           if k.startswith("model.")})
    state = optimizer.state_dict()
    for key, value in arrays.items():
        if key.startswith("adam."):
            _, i, name = key.split(".", 2)
            state["state"].setdefault(int(i), {})[name] = torch.from_numpy(value)
    optimizer.load_state_dict(state)
    return meta


def _settings(config: BCConfig) -> dict:
    """What identifies a run, as config.json holds it: through JSON, so that a tuple compares equal
    to the list read back (the time budget is not part of it: a resumed run may get a new one)."""
    return json.loads(json.dumps(dataclasses.asdict(config) | {"minutes": None}))


def _without_rounds(settings: dict) -> dict:
    """The settings a resumed run must share (runs from before human data existed had none)."""
    return {"human_data": []} | {key: value for key, value in settings.items() if key != "dagger_iterations"}


def train_bc(out: Path | str, config: BCConfig | None = None, work_dir: Path | str | None = None,
             log=print) -> Path:
    """Demonstrations + recovery data → PilotNet → DAgger rounds; writes the model to ``out``.

    Intermediate data and rounds live in ``work_dir`` (default: ``<out>.work/``); rerunning with
    the same config resumes after the last finished stage. Returns ``out``."""
    config = config or BCConfig()
    out = Path(out)
    work = Path(work_dir) if work_dir else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    settings = _settings(config)
    recorded = work / "config.json"
    # more DAgger rounds extend a run (its rounds so far are a prefix); any other change does not fit
    if recorded.is_file() and _without_rounds(json.loads(recorded.read_text())) != _without_rounds(settings):
        raise CasebookError(f"{work} holds a run with other settings",
                            hint="delete that folder or pass the same options to resume it "
                                 "(only the number of DAgger rounds may grow)")
    recorded.write_text(json.dumps(settings, indent=1))
    started = time.monotonic()  # moved back on resume so that "seconds" counts all runs
    deadline = time.monotonic() + config.minutes * 60 if config.minutes else None
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = PilotNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    demo = collect_stage(work / "demos.pt", [config.episode_seed(0, k) for k in range(config.demo_episodes)],
                         config, "expert")
    parts = [demo]
    if config.human_data:
        from .human import load_human_data

        parts += [load_human_data(path) for path in config.human_data]
    if config.recovery_episodes:
        parts.append(collect_stage(work / "recovery.pt",
                                   [config.episode_seed(1, k) for k in range(config.recovery_episodes)],
                                   config, "recovery"))
    history: list[dict] = []
    for round_ in range(config.dagger_iterations + 1):
        round_path = work / f"round{round_}.pt"
        if round_ > 0:
            parts.append(collect_stage(work / f"dagger{round_}.pt",
                                       [config.episode_seed(1 + round_, k) for k in range(config.dagger_episodes)],
                                       config, "dagger", learner=model))
        if round_path.is_file():
            history = _load_round(round_path, model, optimizer)["history"]
            # training time adds up across runs: this run's clock starts where the last round ended
            earlier_seconds = history[-1]["seconds"] if history else 0.0
            started = time.monotonic() - earlier_seconds
            log(f"round {round_}: resumed from {round_path}")
            continue
        frames = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        epochs = config.epochs if round_ == 0 else config.dagger_epochs
        losses = fit(model, optimizer, frames, labels, epochs, config, generator,
                     "BC" if round_ == 0 else f"DAgger {round_}", deadline)
        learner_returns = [s["return"] for s in parts[-1][2]] if round_ > 0 else []
        history.append({"round": round_, "frames": int(len(frames)), "loss": losses[-1],
                        "dagger_learner_return": float(np.mean(learner_returns)) if learner_returns else None,
                        "seconds": time.monotonic() - started})
        _save_round(round_path, model, optimizer, {"history": history})
        log(f"round {round_}: {len(frames)} frames, loss {losses[-1]:.4f}"
            + (f", learner's DAgger laps {np.mean(learner_returns):.0f}" if learner_returns else ""))
        if deadline is not None and time.monotonic() > deadline:
            log(f"time budget of {config.minutes} min spent after round {round_}")
            break
    demo_returns = [s["return"] for s in demo[2]]
    save_pilotnet(out, model, {"env": "carracing", "config": settings, "history": history,
                               "expert_demo_return": float(np.mean(demo_returns)),
                               "train_seconds": time.monotonic() - started})
    return out
