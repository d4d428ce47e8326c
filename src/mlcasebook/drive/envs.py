"""The simulators of the driving case, by short name, and the seed ranges that keep evaluation honest.

- ``carracing``: gymnasium's CarRacing-v3 — 96x96 RGB frames, continuous (steer, gas, brake), a new
  random track per seed; reward 1000/N per track tile visited − 0.1 per frame, so a full lap in
  T frames scores 1000 − 0.1 T.
- highway-env scenes (``highway-fast``, ``highway``, ``racetrack``, ``intersection``, ``merge``,
  ``roundabout``): top-down RGB renders (``render_mode="rgb_array"``; the SDL video driver is
  left alone — the dummy driver renders black frames), each scene's default action type.

Seeds: one integer decides a whole episode (track or traffic). They are split in disjoint ranges so
that nothing measured was ever trained on: training and tuning episodes draw from
``TRAIN_SEEDS``, the detector's held-out frames from ``DETECTOR_HELDOUT_SEEDS``, and evaluation
episode i always uses seed ``EVAL_SEED_BASE + i``.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..core.errors import CasebookError

TRAIN_SEEDS = range(0, 50_000)
DETECTOR_HELDOUT_SEEDS = range(50_000, 100_000)
EVAL_SEED_BASE = 100_000

# short name → gymnasium id (the newest registered version of each highway-env scene)
ENV_IDS = {
    "carracing": "CarRacing-v3",
    "highway-fast": "highway-fast-v0",
    "highway": "highway-v0",
    "racetrack": "racetrack-v1",
    "intersection": "intersection-v2",
    "merge": "merge-v1",
    "roundabout": "roundabout-v1",
}
HIGHWAY_ENVS = tuple(name for name in ENV_IDS if name != "carracing")


def eval_seed(episode: int) -> int:
    """The fixed seed of evaluation episode ``episode`` (0-based); never used for training."""
    return EVAL_SEED_BASE + int(episode)


def check_env_name(name: str) -> str:
    if name not in ENV_IDS:
        raise CasebookError(f"unknown environment {name!r}", hint=f"choose one of: {', '.join(ENV_IDS)}")
    return name


def is_carracing(env) -> bool:
    return env.unwrapped.spec is not None and env.unwrapped.spec.id.startswith("CarRacing")


def make_env(name: str, seed: int | None = None, render: bool = False, max_steps: int | None = None):
    """A gymnasium env by short name, reset once with ``seed`` when given.

    ``render`` asks for ``render_mode="rgb_array"`` (CarRacing's observation is already the 96x96
    frame; with render it also draws a 600x400 view for videos; highway-env always renders rgb
    arrays here, the observation stays its default kinematics table). ``max_steps`` overrides the
    episode's step limit (CarRacing: 1000)."""
    import gymnasium as gym

    check_env_name(name)
    kwargs: dict = {}
    if name == "carracing":
        if render:
            kwargs["render_mode"] = "rgb_array"
    else:
        import highway_env  # noqa: F401  (registers the scenes)

        kwargs["render_mode"] = "rgb_array"
    if max_steps is not None:
        kwargs["max_episode_steps"] = int(max_steps)
    with warnings.catch_warnings():
        # highway-env flags its older scene versions as out of date; the ids above are the newest
        warnings.simplefilter("ignore", DeprecationWarning)
        env = gym.make(ENV_IDS[name], **kwargs)
    if seed is not None:
        env.reset(seed=int(seed))
    return env


def camera_frame(env, obs) -> np.ndarray:
    """The frame a camera-driven agent sees: CarRacing's observation itself, else the render."""
    return obs if is_carracing(env) else env.render()


def steps_per_second(name: str, steps: int = 200, seed: int = EVAL_SEED_BASE) -> float:
    """Simulator throughput under random actions, rendering frames as an agent would see them."""
    import time

    env = make_env(name, seed=seed)
    rng = np.random.default_rng(0)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=seed)
    started = time.perf_counter()
    for _ in range(steps):
        action = env.action_space.sample()
        if name == "carracing":  # full gas half the time so the car actually moves
            action[1] = rng.random()
        obs, _, terminated, truncated, _ = env.step(action)
        camera_frame(env, obs)
        if terminated or truncated:
            obs, _ = env.reset(seed=seed)
    elapsed = time.perf_counter() - started
    env.close()
    return steps / elapsed
