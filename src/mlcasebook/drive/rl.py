"""PPO (stable-baselines3) on highway-fast, under our safety/comfort/efficiency reward or the default one.

The agent sees highway-env's *kinematics* observation — the 5 nearest vehicles' presence, position
and velocity relative to the ego, a 5 x 5 array — not pixels: the chapter's RL runs in simulation on
the perceived state, and learning perception and control together from frames would not train in
an hour on two cores. It picks one of highway-env's meta-actions (LANE_LEFT, IDLE, LANE_RIGHT,
FASTER, SLOWER) once per second; the env's low-level controller steers and tracks the speed.

Hyper-parameters follow highway-env's own SB3 PPO example (``scripts/sb3_highway_ppo.py``: two
256-unit layers, 768 samples per update in batches of 64, 10 epochs, learning rate 5e-4, gamma 0.8
— a short horizon suits a task whose dangers are a few seconds away); they were not tuned on the
evaluation episodes. Training episodes come from env seeds below 50,000; evaluation uses seeds
100,000 + i, which training never draws explicitly.

Resumable: the model (SB3 zip) and ``state.json`` (settings, timesteps done, training time) are
written atomically every ``checkpoint_every`` steps; ``resume=True`` continues from there.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..core.checkpoint import atomic_write_text
from ..core.errors import CasebookError
from ..core.progress import bar
from .envs import EVAL_SEED_BASE, TRAIN_SEEDS
from .perception import make_highway
from .rewards import RewardWeights, SafeComfortReward

REWARDS = ("ours", "default")
EVAL_SEED0 = EVAL_SEED_BASE
TRAIN_SEED_LIMIT = TRAIN_SEEDS.stop
PPO_SETTINGS = {"n_envs": 4, "n_steps": 192, "batch_size": 64, "n_epochs": 10, "learning_rate": 5e-4,
                "gamma": 0.8, "net_arch": [256, 256]}


def make_rl_env(reward: str = "ours", weights: RewardWeights | None = None):
    """highway-fast with kinematics observations, under our reward (``ours``) or highway-env's (``default``)."""
    if reward not in REWARDS:
        raise CasebookError(f"unknown reward '{reward}'", hint=f"choose one of: {', '.join(REWARDS)}")
    env = make_highway()
    return SafeComfortReward(env, weights) if reward == "ours" else env


def _paths(out: Path) -> tuple[Path, Path]:
    return out / "model.zip", out / "state.json"


def _save(model, out: Path, state: dict) -> None:
    """Model first, then the state that points at it: a crash in between leaves the old pair usable."""
    model_path, state_path = _paths(out)
    tmp = out / ".model.tmp.zip"
    model.save(tmp)
    os.replace(tmp, model_path)
    atomic_write_text(state_path, json.dumps(state, indent=2))


# the warm start's episodes: seed 41,000 + 200·seed + k, training seeds apart from PPO's own
# (seed·1,000 + 4·session, seed ≤ 40); k < N for the expert's laps, N ≤ k < 2N for the DAgger rounds
WARM_START_SEED0 = 41_000
MAX_WARM_START_EPISODES = 100
WARM_START_DAGGER_ROUNDS = 3
WARM_START_MODEL = "warm_start.zip"


def expert_demonstrations(episodes: int, reward: str = "ours", weights: RewardWeights | None = None,
                          seed: int = 0, gamma: float = PPO_SETTINGS["gamma"], first_episode: int = 0,
                          learner=None, progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Episodes labelled by the highway expert: (observations, the expert's action at each, the
    discounted return from each step under ``reward``) — what the warm start imitates and fits.

    The expert drives, or ``learner`` (a PPO model) does and the expert only labels (DAgger: the
    states the clone's own mistakes lead to). Episode k uses training seed
    ``WARM_START_SEED0 + MAX_WARM_START_EPISODES·2·seed + first_episode + k``."""
    from .experts import HighwayExpert

    expert = HighwayExpert()
    env = make_rl_env(reward, weights)
    observations, actions, returns = [], [], []
    with bar(episodes, "DAgger episodes" if learner else "expert demonstrations", disable=not progress) as advance:
        for k in range(episodes):
            obs, _ = env.reset(seed=WARM_START_SEED0 + seed * 2 * MAX_WARM_START_EPISODES + first_episode + k)
            rewards, done = [], False
            while not done:
                label = int(expert.act(env, obs))
                observations.append(obs)
                actions.append(label)
                action = label if learner is None else int(learner.predict(obs, deterministic=True)[0])
                obs, reward_value, terminated, truncated, _ = env.step(action)
                rewards.append(float(reward_value))
                done = terminated or truncated
            discounted, running = [], 0.0
            for value in reversed(rewards):  # the episode's end is a true end (crash or time limit)
                running = value + gamma * running
                discounted.append(running)
            returns.extend(reversed(discounted))
            advance(1)
    env.close()
    return (np.asarray(observations, dtype=np.float32), np.asarray(actions, dtype=np.int64),
            np.asarray(returns, dtype=np.float32))


def warm_start(model, observations: np.ndarray, actions: np.ndarray, returns: np.ndarray, epochs: int = 200,
               batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> dict:
    """Behaviour cloning into a fresh PPO policy (AlphaGo's order: imitate, then improve by RL).

    The actor learns the expert's action (cross-entropy), the critic its discounted return (MSE), so
    the first PPO updates start from sensible advantages instead of tearing the policy apart.
    Returns the final losses and the training accuracy of the actor."""
    import torch

    policy = model.policy
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    obs_t, act_t, ret_t = torch.as_tensor(observations), torch.as_tensor(actions), torch.as_tensor(returns)
    policy.set_training_mode(True)
    for _ in range(epochs):
        order = torch.randperm(len(obs_t), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            values, log_prob, _ = policy.evaluate_actions(obs_t[batch], act_t[batch])
            actor_loss = -log_prob.mean()
            critic_loss = torch.nn.functional.mse_loss(values.flatten(), ret_t[batch])
            optimizer.zero_grad()
            (actor_loss + 0.5 * critic_loss).backward()
            optimizer.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        values, log_prob, _ = policy.evaluate_actions(obs_t, act_t)
        predicted = policy.get_distribution(obs_t).distribution.probs.argmax(dim=1)
    return {"actor_loss": round(float(-log_prob.mean()), 4),
            "critic_loss": round(float(torch.nn.functional.mse_loss(values.flatten(), ret_t)), 4),
            "train_accuracy": round(float((predicted == act_t).float().mean()), 4), "samples": int(len(obs_t))}


def train_ppo(reward: str = "ours", timesteps: int = 20_000, out: Path | str = "ppo-highway", seed: int = 0,
              weights: RewardWeights | None = None, resume: bool = False, checkpoint_every: int = 2_000,
              progress: bool = True, warm_start_episodes: int = 0) -> dict:
    """Train (or continue training) PPO; returns the state written to ``out/state.json``.

    ``warm_start_episodes`` > 0: before any PPO step, clone the highway expert's decisions from that
    many training episodes into the policy (``warm_start``), then run ``WARM_START_DAGGER_ROUNDS``
    DAgger rounds (the clone drives, the expert labels; a third as many episodes each), then
    fine-tune by PPO at a fifth of the learning rate (the full rate unlearns the clone in a few
    updates). Measured: a plain clone of the expert's laps never learns to slow down (SLOWER is
    12 % of its decisions and the costly ones) and crashed in 97 % of the evaluation episodes."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    if reward not in REWARDS:
        raise CasebookError(f"unknown reward '{reward}'", hint=f"choose one of: {', '.join(REWARDS)}")
    if timesteps < 1:
        raise CasebookError(f"--timesteps must be positive, got {timesteps}", hint="e.g. --timesteps 20000")
    out = Path(out)
    model_path, state_path = _paths(out)
    weights = weights or RewardWeights()
    if not 0 <= warm_start_episodes <= MAX_WARM_START_EPISODES:
        raise CasebookError(f"--warm-start must be 0 … {MAX_WARM_START_EPISODES}, got {warm_start_episodes}",
                            hint="e.g. --warm-start 100")
    ppo_settings = dict(PPO_SETTINGS)
    if warm_start_episodes:
        ppo_settings["learning_rate"] = PPO_SETTINGS["learning_rate"] / 5
    settings = {"reward": reward, "weights": weights.as_dict() if reward == "ours" else None, "seed": seed,
                "ppo": ppo_settings, "observation": "kinematics (5 vehicles x [presence, x, y, vx, vy])",
                "env": "highway-fast-v0", "warm_start_episodes": warm_start_episodes}
    state = {"settings": settings, "timesteps_done": 0, "train_s": 0.0, "sessions": 0}
    if resume and state_path.is_file() and model_path.is_file():
        state = json.loads(state_path.read_text())
        state["settings"].setdefault("warm_start_episodes", 0)  # runs from before the warm start existed
        if state["settings"] != settings:
            raise CasebookError(f"{out} holds a run with other settings ({state['settings']['reward']} reward)",
                                hint="rerun with the same options, or use another --out")
    elif state_path.is_file() and not resume:
        raise CasebookError(f"{out} already holds a PPO run", hint="pass --resume to continue it, or another --out")
    state["timesteps_target"] = timesteps
    remaining = timesteps - state["timesteps_done"]
    if remaining <= 0:
        return state
    # each session draws training episodes from its own seeds, all below the held-out ranges
    env_seed = seed * 1_000 + state["sessions"] * PPO_SETTINGS["n_envs"]
    if env_seed + PPO_SETTINGS["n_envs"] > TRAIN_SEED_LIMIT:
        raise CasebookError("training seeds would reach the held-out range", hint="use a smaller --seed")
    vec_env = make_vec_env(lambda: make_rl_env(reward, weights), n_envs=PPO_SETTINGS["n_envs"], seed=env_seed)
    torch.manual_seed(seed)
    if state["timesteps_done"]:
        model = PPO.load(model_path, env=vec_env, device="cpu")
    else:
        model = PPO("MlpPolicy", vec_env, n_steps=ppo_settings["n_steps"], batch_size=ppo_settings["batch_size"],
                    n_epochs=ppo_settings["n_epochs"], learning_rate=ppo_settings["learning_rate"],
                    gamma=ppo_settings["gamma"], policy_kwargs={"net_arch": ppo_settings["net_arch"]},
                    seed=seed, device="cpu", verbose=0)
        if warm_start_episodes:
            began = time.perf_counter()
            data = expert_demonstrations(warm_start_episodes, reward, weights, seed=seed, progress=progress)
            rounds = [warm_start(model, *data, seed=seed)]
            per_round = max(1, warm_start_episodes // WARM_START_DAGGER_ROUNDS)
            for round_ in range(WARM_START_DAGGER_ROUNDS):
                visited = expert_demonstrations(per_round, reward, weights, seed=seed, learner=model,
                                                first_episode=warm_start_episodes + round_ * per_round,
                                                progress=progress)
                data = tuple(np.concatenate([old, new]) for old, new in zip(data, visited, strict=True))
                rounds.append(warm_start(model, *data, seed=seed))
            state["warm_start"] = rounds[-1] | {"dagger_rounds": WARM_START_DAGGER_ROUNDS,
                                                "first_fit_accuracy": rounds[0]["train_accuracy"]}
            state["warm_start"]["seconds"] = round(time.perf_counter() - began, 1)
            out.mkdir(parents=True, exist_ok=True)
            model.save(out / WARM_START_MODEL)  # the clone before any PPO step, to measure what RL adds
            state["train_s"] = state["warm_start"]["seconds"]
    out.mkdir(parents=True, exist_ok=True)

    class Checkpoints(BaseCallback):
        """Advance the bar, and checkpoint every ``checkpoint_every`` steps."""

        def __init__(self, advance):
            super().__init__()
            self.advance, self.began, self.last_saved = advance, time.perf_counter(), state["timesteps_done"]
            self.base_done, self.base_time = state["timesteps_done"], state["train_s"]

        def snapshot(self) -> None:
            state["timesteps_done"] = self.base_done + self.num_timesteps_in_session
            state["train_s"] = round(self.base_time + time.perf_counter() - self.began, 1)
            _save(self.model, out, state)
            self.last_saved = state["timesteps_done"]

        @property
        def num_timesteps_in_session(self) -> int:
            return self.model.num_timesteps - start_timesteps

        def _on_step(self) -> bool:
            self.advance(self.training_env.num_envs)
            if self.base_done + self.num_timesteps_in_session - self.last_saved >= checkpoint_every:
                self.snapshot()
            return True

    start_timesteps = model.num_timesteps
    state["sessions"] += 1
    with bar(remaining, f"PPO ({reward} reward)", disable=not progress) as advance:
        callback = Checkpoints(advance)
        model.learn(total_timesteps=remaining, callback=callback, reset_num_timesteps=False)
        callback.snapshot()
    vec_env.close()
    return state


class PPOAgent:
    """A trained policy: ``act(obs)`` → a meta-action (deterministic)."""

    def __init__(self, model, state: dict):
        self.model, self.state = model, state

    def act(self, obs) -> int:
        action, _ = self.model.predict(obs, deterministic=True)
        return int(action)


def load_ppo_agent(path: Path | str) -> PPOAgent:
    """Load ``out`` of ``train_ppo`` (the folder, or one of its zips: model.zip, warm_start.zip)."""
    from stable_baselines3 import PPO

    path = Path(path)
    folder = path if path.suffix != ".zip" else path.parent
    model_path, state_path = _paths(folder)
    if path.suffix == ".zip":  # a given zip: model.zip, or the warm start's clone beside it
        model_path = path
    if not model_path.is_file():
        raise CasebookError(f"no PPO checkpoint at {path} (expected {model_path})",
                            hint="train one with `mlcasebook drive ppo-train --out PATH`, then pass that PATH")
    try:
        model = PPO.load(model_path, device="cpu")
    except Exception as exc:  # SB3 raises several types for foreign or truncated zips
        raise CasebookError(f"not a PPO checkpoint: {model_path} ({exc.__class__.__name__})",
                            hint="retrain it with `mlcasebook drive ppo-train`") from exc
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    return PPOAgent(model, state)


class IDMStandIn:
    """highway-env's own IDM + MOBIL driver in the ego's seat: a stand-in for the case's highway expert.

    On reset the ego becomes an ``IDMVehicle`` (target speed ``target_speed``) that ignores the
    actions sent to it; it accelerates, follows and changes lanes by IDM and MOBIL."""

    reads_state = True

    def __init__(self, target_speed: float = 30.0):
        self.target_speed = target_speed

    def reset(self, env) -> None:
        from highway_env.vehicle.behavior import IDMVehicle

        base = env.unwrapped
        ego = base.vehicle
        idm = IDMVehicle.create_from(ego)
        idm.target_speed = self.target_speed
        base.road.vehicles[base.road.vehicles.index(ego)] = idm
        base.controlled_vehicles = [idm]
        base.action_type.controlled_vehicle = idm

    def act(self, env, obs) -> int:
        return 1  # IDLE: the IDM vehicle decides on its own


class HighwayExpertAgent:
    """The case's highway expert (``experts.HighwayExpert``) behind ``evaluate_highway``'s agent
    interface: it reads the road, not the observation."""

    reads_state = True

    def __init__(self, expert=None):
        from .experts import HighwayExpert

        self.expert = expert or HighwayExpert()

    def reset(self, env) -> None:
        self.expert.reset()

    def act(self, env, obs):
        return self.expert.act(env, obs)


def _forward_speed(vehicle) -> float:
    return float(vehicle.speed * math.cos(vehicle.heading))


def evaluate_highway(agent, episodes: int = 100, seeds: list[int] | None = None,
                     weights: RewardWeights | None = None, progress: bool = True,
                     allow_training_seeds: bool = False) -> dict:
    """Drive ``episodes`` episodes on highway-fast (seeds 100,000 + i unless given).

    Seeds below 100,000 are refused unless ``allow_training_seeds`` (a tuning sweep, which must
    never look at the evaluation seeds, runs on training seeds on purpose).

    Collision rate: share of episodes that end in a crash. Speeds: the ego's forward speed at every
    policy step (1 Hz); mean |jerk|: |second difference of that speed trace| / dt², pooled over
    steps. Returns under both rewards: the default (``return_default``) and ours (``return_ours``).
    ``agent`` has ``act(obs)``, or ``act(env, obs)`` when it sets ``reads_state`` (an expert);
    an optional ``reset(env)`` is called after each env reset."""
    seeds = list(seeds) if seeds is not None else [EVAL_SEED0 + i for i in range(episodes)]
    if len(seeds) != episodes:
        raise CasebookError(f"{episodes} episodes but {len(seeds)} seeds", hint="give one seed per episode")
    if not allow_training_seeds and any(s < EVAL_SEED0 for s in seeds):
        raise CasebookError("evaluation seeds must be >= 100000 (lower seeds are training or detector data)",
                            hint="leave --seeds out to use 100000 + i")
    env = SafeComfortReward(make_highway(), weights)
    dt = env.dt
    crashes, speeds, jerks, returns_default, returns_ours, lengths = [], [], [], [], [], []
    reads_state = getattr(agent, "reads_state", False)
    with bar(episodes, "evaluation episodes", disable=not progress) as advance:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            if hasattr(agent, "reset"):
                agent.reset(env)
                obs = env.unwrapped.observation_type.observe()
                env.reset_trace()
            trace = [_forward_speed(env.unwrapped.vehicle)]
            ours = default = 0.0
            done = False
            while not done:
                action = agent.act(env, obs) if reads_state else agent.act(obs)
                obs, reward, terminated, truncated, info = env.step(action)
                trace.append(_forward_speed(env.unwrapped.vehicle))
                ours += reward
                default += info["default_reward"]
                done = terminated or truncated
            crashes.append(bool(env.unwrapped.vehicle.crashed))
            trace = np.asarray(trace)
            speeds.append(trace[1:])
            jerks.append(np.abs(np.diff(trace, n=2)) / dt ** 2)
            returns_default.append(default)
            returns_ours.append(ours)
            lengths.append(len(trace) - 1)
            advance(1)
    env.close()
    crash_rate = float(np.mean(crashes))
    # Wilson 95 % interval: with 100 episodes and few crashes the normal approximation is useless
    n, z = len(crashes), 1.96
    centre = (crash_rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(crash_rate * (1 - crash_rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"episodes": n, "seeds": f"{seeds[0]}..{seeds[-1]}" if n else "", "collision_rate": crash_rate,
            "collision_rate_95ci": [round(max(centre - half, 0.0), 4), round(min(centre + half, 1.0), 4)],
            "mean_speed": float(np.mean(np.concatenate(speeds))),
            "mean_abs_jerk": float(np.mean(np.concatenate(jerks))) if any(len(j) for j in jerks) else 0.0,
            "return_default": float(np.mean(returns_default)), "return_ours": float(np.mean(returns_ours)),
            "mean_steps": float(np.mean(lengths)), "weights": asdict(env.weights)}
