"""Record a person driving CarRacing with the keyboard: the human demonstrations PilotNet learned from.

PilotNet was trained on people's driving; the case's default teacher is the expert controller
(free, consistent, and able to label any state for DAgger). Users with a screen can add their own
laps: ``mlcasebook drive record-human --out my-laps.pt`` opens CarRacing's window, the arrow keys
(or W A S D) drive, Esc or closing the window stops. The file has the format of
``mlcasebook drive collect`` (frames + labels + per-lap stats), and ``mlcasebook drive train
--human my-laps.pt`` adds it to the demonstrations.

Labels: PilotNet predicts steering and a *target speed* (``pilotnet.py``). A person's steering
key is the steering label. A person has no target-speed knob, only pedals, so the label is the
speed the car actually reached ``SPEED_LOOKAHEAD_S`` later — where the driver's foot was taking
it — which a proportional speed controller then tracks as it does for the expert's targets.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ..core.errors import CasebookError

FPS = 50  # CarRacing's frames per second
SPEED_LOOKAHEAD_S = 0.5
STEER_KEYS = {"left": -1.0, "right": 1.0}
GAS, BRAKE = 1.0, 0.8  # brake ≥ 0.9 locks CarRacing's wheels


def action_from_keys(left: bool, right: bool, up: bool, down: bool) -> np.ndarray:
    """CarRacing's (steer, gas, brake) for the keys held down; opposite keys cancel."""
    steer = (STEER_KEYS["left"] if left else 0.0) + (STEER_KEYS["right"] if right else 0.0)
    return np.array([steer, GAS if up else 0.0, BRAKE if down else 0.0], dtype=np.float32)


def human_labels(steering: np.ndarray, speeds: np.ndarray, lookahead_s: float = SPEED_LOOKAHEAD_S,
                 fps: int = FPS) -> np.ndarray:
    """PilotNet labels (n, 2) for a recorded lap: the steering held at each frame and, as the target
    speed, the speed ``lookahead_s`` later (the last frames take the final speed)."""
    from .pilotnet import labels_from_expert

    speeds = np.asarray(speeds, dtype=np.float64)
    shift = int(round(lookahead_s * fps))
    ahead = np.concatenate([speeds[shift:], np.full(min(shift, len(speeds)), speeds[-1] if len(speeds) else 0.0)])
    return labels_from_expert(np.asarray(steering, dtype=np.float64), ahead[:len(speeds)])


def has_screen() -> bool:
    """Whether a window can open: a display on Linux/BSD; Windows and macOS always have one."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def record_human_laps(out: Path | str, laps: int = 1, seed: int = 0, frame_stride: int = 2,
                      max_steps: int = 1000, log=print) -> Path:
    """Open CarRacing's window and record ``laps`` episodes driven from the keyboard (training seeds
    ``seed·1,000 + 990 + k``, k < 10); every ``frame_stride``-th frame is kept, as in the expert's data."""
    from .bc import _save_data
    from .envs import TRAIN_SEEDS
    from .experts import car_speed

    out = Path(out)
    if not 1 <= laps <= 10:
        raise CasebookError(f"--laps must be 1 … 10, got {laps}", hint="record more laps into another file")
    if out.exists():
        raise CasebookError(f"{out} exists", hint="choose another --out or delete it")
    if not has_screen():
        raise CasebookError("recording a human lap needs a screen (no DISPLAY here)",
                            hint="run it on a desktop session; `mlcasebook drive collect` records the expert")
    import gymnasium as gym
    import pygame

    frames, labels, stats = [], [], []
    env = gym.make("CarRacing-v3", render_mode="human", max_episode_steps=max_steps)
    try:
        for lap in range(laps):
            episode_seed = seed * 1_000 + 990 + lap
            if episode_seed not in TRAIN_SEEDS:
                raise CasebookError("human laps must use training seeds", hint="use a --seed below 50")
            obs, _ = env.reset(seed=episode_seed)
            lap_frames, steering, speeds, total, steps, quit_all = [], [], [], 0.0, 0, False
            log(f"lap {lap + 1}/{laps}: arrow keys or W A S D drive, Esc stops")
            while True:
                for event in pygame.event.get():
                    if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                        quit_all = True
                if quit_all:
                    break
                held = pygame.key.get_pressed()
                action = action_from_keys(held[pygame.K_LEFT] or held[pygame.K_a],
                                          held[pygame.K_RIGHT] or held[pygame.K_d],
                                          held[pygame.K_UP] or held[pygame.K_w],
                                          held[pygame.K_DOWN] or held[pygame.K_s])
                if steps % frame_stride == 0:
                    lap_frames.append(obs)
                steering.append(action[0])
                speeds.append(car_speed(env))
                obs, reward, terminated, truncated, _ = env.step(action)
                total += reward
                steps += 1
                if terminated or truncated:
                    break
            if lap_frames:
                # labels from every frame (the target speed looks ahead), kept at the recorded frames
                frames.append(np.asarray(lap_frames, dtype=np.uint8))
                labels.append(human_labels(np.asarray(steering), np.asarray(speeds))[::frame_stride])
                stats.append({"seed": episode_seed, "mode": "human", "return": total, "steps": steps})
                log(f"lap {lap + 1}: return {total:.0f} in {steps} frames")
            if quit_all:
                break
    finally:
        env.close()
    if not frames:
        raise CasebookError("no frames were recorded", hint="drive for a while before pressing Esc")
    _save_data(out, np.concatenate(frames), np.concatenate(labels).astype(np.float32), stats)
    return out


def load_human_data(path: Path | str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Frames, labels and lap stats of a ``record-human`` (or ``collect``) file, checked."""
    from .bc import _load_data

    path = Path(path)
    if not path.is_file():
        raise CasebookError(f"no recorded laps at {path}",
                            hint="record some with `mlcasebook drive record-human --out PATH`")
    try:
        frames, labels, stats = _load_data(path)
    except Exception as exc:  # a foreign or truncated file
        raise CasebookError(f"{path} is not a file of recorded laps ({exc.__class__.__name__})",
                            hint="pass a file written by `mlcasebook drive record-human` or `collect`") from exc
    if frames.ndim != 4 or frames.shape[1:] != (96, 96, 3) or labels.shape != (len(frames), 2):
        raise CasebookError(f"{path} holds frames {frames.shape} and labels {labels.shape}",
                            hint="expected 96x96 RGB CarRacing frames with (steer, target speed) labels")
    return frames, labels, stats
