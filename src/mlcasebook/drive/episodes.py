"""Evaluation episodes for any driving agent, on fixed seeds that training never uses.

Figures:
- return: the env's own episode return (CarRacing: 1000/N per tile − 0.1 per frame), mean ± sd
  over episodes with seeds ``EVAL_SEED_BASE + i``;
- autonomy (PilotNet's figure, Bojarski et al. 2016): 1 − interventions × 6 s / elapsed time. The
  paper counted a human taking over and charged each takeover 6 s. Here the expert is the safety
  driver: an *intervention* happens when the agent is in control and the car's centre leaves the
  road (farther than half the track width, 6.67 m, from the centre line) or it points more than 90°
  away from the track direction. The expert then drives for ``TAKEOVER_S`` seconds and hands back.
  Elapsed time is simulated time (50 frames a second). Autonomy runs are separate episodes (the
  takeovers would flatter the return);
- departures: the same off-road events counted in the plain return episodes (no takeover);
- highway-env: collision rate, mean speed [m/s] and mean return.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.errors import CasebookError
from .envs import eval_seed, is_carracing, make_env

AGENTS = ("expert", "pilotnet", "ppo", "random")
CARRACING_FPS = 50
TRACK_HALF_WIDTH = 40 / 6.0  # CarRacing's TRACK_WIDTH (40 / SCALE): centre line to road edge
HEADING_LIMIT = math.pi / 2
TAKEOVER_S = 2.0
PILOTNET_SECONDS_PER_INTERVENTION = 6.0


@dataclass
class Agent:
    """A driver: ``act(env, obs)`` → the env's action; ``reset()`` before each episode."""

    name: str
    act: Callable
    reset: Callable = lambda: None


def check_agent_name(name: str) -> str:
    if name not in AGENTS:
        raise CasebookError(f"unknown agent {name!r}", hint=f"choose one of: {', '.join(AGENTS)}")
    return name


def make_agent(name: str, env_name: str, model: str | None = None, seed: int = 0) -> Agent:
    """The named agent for ``env_name``; ``model`` is the checkpoint of a learned one."""
    check_agent_name(name)
    if name == "expert":
        from .experts import CarRacingExpert, HighwayExpert

        expert = CarRacingExpert() if env_name == "carracing" else HighwayExpert()
        return Agent("expert", expert.act, expert.reset)
    if name == "random":
        rng_state = {"space": None}

        def act(env, obs):
            if rng_state["space"] is None:
                rng_state["space"] = env.action_space
                env.action_space.seed(seed)
            return env.action_space.sample()

        return Agent("random", act)
    if model is None:
        raise CasebookError(f"the {name} agent needs a trained model", hint="pass --model PATH")
    if name == "pilotnet":
        from .pilotnet import PilotNetAgent, load_pilotnet

        if env_name != "carracing":
            raise CasebookError(f"PilotNet is trained on CarRacing frames, not on {env_name}",
                                hint="use --env carracing, or the expert / ppo agents on highway-env scenes")
        network, _ = load_pilotnet(model)
        return Agent("pilotnet", PilotNetAgent(network).act)
    if env_name not in ("highway-fast", "highway"):
        raise CasebookError(f"the PPO agent drives highway-fast (kinematics observations), not {env_name}",
                            hint="use --env highway-fast")
    try:
        from .rl import load_ppo_agent
    except ImportError as exc:  # the RL half of the case is built separately
        raise CasebookError("the PPO agent is not available in this build",
                            hint="train one with `mlcasebook drive ppo-train` once drive/rl.py exists") from exc
    ppo = load_ppo_agent(model)
    return Agent("ppo", lambda env, obs: ppo.act(obs))


def off_road(env) -> tuple[bool, float, float]:
    """(off the road?, distance from the centre line [m], heading error [rad]) for CarRacing."""
    from .experts import track_errors

    distance, heading, _ = track_errors(env)
    return distance > TRACK_HALF_WIDTH or abs(heading) > HEADING_LIMIT, distance, heading


def run_episode(env_name: str, agent: Agent, seed: int, max_steps: int | None = None, takeover: bool = False,
                on_frame: Callable | None = None) -> dict:
    """One episode of ``agent`` on ``env_name`` with ``seed``.

    ``takeover``: the expert takes over for ``TAKEOVER_S`` after each intervention (CarRacing).
    ``on_frame(env, obs, action, info)`` is called after every step (recording)."""
    env = make_env(env_name, render=on_frame is not None, max_steps=max_steps)
    obs, _ = env.reset(seed=seed)
    agent.reset()
    carracing = is_carracing(env)
    safety_driver = None
    if carracing:
        from .experts import CarRacingExpert

        safety_driver = CarRacingExpert()
    total, steps, interventions, departures, expert_steps = 0.0, 0, 0, 0, 0
    speeds, crashed, was_off, takeover_left = [], False, False, 0
    info: dict = {}
    while True:
        if takeover_left > 0:
            action = safety_driver.act(env, obs)
            takeover_left -= 1
            expert_steps += 1
        else:
            action = agent.act(env, obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        if carracing:
            off, _, _ = off_road(env)
            if off and not was_off:
                departures += 1
            if off and takeover and takeover_left == 0:
                interventions += 1
                takeover_left = int(TAKEOVER_S * CARRACING_FPS)
            was_off = off
            safety_driver.act(env, obs)  # keeps the expert's centre-line index in step with the car
        else:
            speeds.append(float(info.get("speed", 0.0)))
            crashed = crashed or bool(info.get("crashed", False))
        if on_frame is not None:
            on_frame(env, obs, action, info)
        if terminated or truncated:
            break
    env.close()
    result = {"seed": seed, "return": total, "steps": steps}
    if carracing:
        elapsed = steps / CARRACING_FPS
        result |= {"lap_finished": bool(info.get("lap_finished", False)), "departures": departures,
                   "seconds": elapsed}
        if takeover:
            result |= {"interventions": interventions, "expert_steps": expert_steps,
                       "autonomy": autonomy(interventions, elapsed)}
    else:
        result |= {"crashed": crashed, "mean_speed": float(np.mean(speeds)) if speeds else 0.0}
    return result


def autonomy(interventions: int, elapsed_s: float) -> float:
    """PilotNet's autonomy: 1 − interventions × 6 s / elapsed time (can go below 0 for a bad driver)."""
    return 1.0 - interventions * PILOTNET_SECONDS_PER_INTERVENTION / max(elapsed_s, 1e-9)


def evaluate(env_name: str, agent: Agent, episodes: int, max_steps: int | None = None, takeover: bool = False,
             first_episode: int = 0, progress: bool = True) -> dict:
    """``episodes`` fixed-seed evaluation episodes (seeds 100,000 + i); summary and per-episode rows."""
    from ..core.progress import track

    seeds = [eval_seed(first_episode + i) for i in range(episodes)]
    rows = [run_episode(env_name, agent, seed, max_steps, takeover)
            for seed in track(seeds, f"{agent.name} on {env_name}", disable=not progress)]
    returns = np.array([r["return"] for r in rows])
    summary = {"agent": agent.name, "env": env_name, "episodes": episodes, "seeds": [seeds[0], seeds[-1]],
               "return_mean": float(returns.mean()), "return_sd": float(returns.std(ddof=1)) if episodes > 1 else 0.0,
               "mean_steps": float(np.mean([r["steps"] for r in rows]))}
    if "lap_finished" in rows[0]:
        summary |= {"laps_finished": int(sum(r["lap_finished"] for r in rows)),
                    "departures_per_episode": float(np.mean([r["departures"] for r in rows]))}
        if takeover:
            interventions = sum(r["interventions"] for r in rows)
            elapsed = sum(r["seconds"] for r in rows)
            summary |= {"interventions": int(interventions), "elapsed_s": float(elapsed),
                        "autonomy": autonomy(interventions, elapsed)}
    else:
        summary |= {"collision_rate": float(np.mean([r["crashed"] for r in rows])),
                    "mean_speed": float(np.mean([r["mean_speed"] for r in rows]))}
    return summary | {"per_episode": rows}
