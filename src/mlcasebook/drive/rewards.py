"""A driving reward made of safety, comfort and efficiency terms, with configurable weights.

highway-env's default reward (``HighwayEnv._reward``; its parts are in ``info["rewards"]``) is
``-1 · collision + 0.1 · right_lane + 0.4 · high_speed`` (high_speed: forward speed mapped from
[20, 30] m/s to [0, 1]), linearly rescaled from [-1, 0.5] to [0, 1] and multiplied by on_road.
So a crash costs about a third of one step's reward plus the rest of the episode (the episode
ends), the right-most lane is rewarded for its own sake, and nothing rewards smoothness or keeping
a safe gap: an agent can tailgate at full speed and brake hard at the last moment for free.

``SafeComfortReward`` replaces it with the three families of the chapter, each term a number in
[0, 1] reported in ``info["reward_terms"]`` and weighted by ``RewardWeights`` (the reward is the
weighted sum, also reported term by term in ``info["reward_weighted"]``):

- safety: ``collision`` (1 on the step the ego crashes) and ``ttc`` (time-to-collision to the
  leader in the ego's lane — and in the target lane while changing lanes — as
  ``1 - ttc / ttc_horizon`` below the horizon, 0 beyond or when the gap is opening);
- comfort: ``jerk`` (|change of acceleration| per second over the policy steps' speed trace,
  divided by ``jerk_scale``) and ``steering_rate`` (|change of steering angle| per second divided
  by ``steering_rate_scale``), both clipped to 1;
- efficiency: ``speed`` (forward speed mapped from [20, 30] m/s to [0, 1], as the default) and
  ``progress`` (metres travelled along the road this step over 30 m/s · dt).

The default reward is still in ``info["default_reward"]``, so a run under one reward can be
scored under the other.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np

TERMS = ("collision", "ttc", "jerk", "steering_rate", "speed", "progress")
SPEED_RANGE = (20.0, 30.0)


@dataclass(frozen=True)
class RewardWeights:
    """Weight of each term (negative for penalties); set by ``--w-<term>`` on the command line."""

    collision: float = -5.0
    ttc: float = -1.0
    jerk: float = -0.1
    steering_rate: float = -0.1
    speed: float = 1.0
    progress: float = 0.0
    ttc_horizon: float = 3.0  # seconds: a leader closer in time than this is penalised
    jerk_scale: float = 10.0  # m/s³ that counts as a full comfort violation
    steering_rate_scale: float = 0.2  # rad/s

    def weight(self, term: str) -> float:
        return float(getattr(self, term))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _forward_speed(vehicle) -> float:
    return float(vehicle.speed * math.cos(vehicle.heading))


def time_to_collision(env) -> float:
    """Seconds until the ego reaches its leader at current speeds (in its lane, and in the target lane
    during a lane change: the worse of the two); ``inf`` when no leader is closing in."""
    env = env.unwrapped
    ego, road = env.vehicle, env.road
    lanes = {ego.lane_index, getattr(ego, "target_lane_index", ego.lane_index)}
    worst = math.inf
    for lane_index in lanes:
        leader, _ = road.neighbour_vehicles(ego, lane_index)
        if leader is None:
            continue
        lane = road.network.get_lane(lane_index)
        gap = (lane.local_coordinates(leader.position)[0] - lane.local_coordinates(ego.position)[0]
               - (ego.LENGTH + leader.LENGTH) / 2)
        closing = _forward_speed(ego) - _forward_speed(leader)
        if gap <= 0:
            return 0.0
        if closing > 0:
            worst = min(worst, gap / closing)
    return worst


class SafeComfortReward(gym.Wrapper):
    """Replaces the env's reward by the weighted safety / comfort / efficiency terms (see module doc)."""

    def __init__(self, env: gym.Env, weights: RewardWeights | None = None):
        super().__init__(env)
        self.weights = weights or RewardWeights()
        self._previous: dict[str, float] = {}

    @property
    def dt(self) -> float:
        return 1.0 / float(self.env.unwrapped.config["policy_frequency"])

    def _ego_state(self) -> dict[str, float]:
        ego = self.env.unwrapped.vehicle
        return {"speed": _forward_speed(ego), "x": float(ego.position[0]),
                "steering": float(getattr(ego, "action", {}).get("steering", 0.0))}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.reset_trace()
        return obs, info

    def reset_trace(self) -> None:
        """Start the speed / steering trace afresh (after a reset, or after the ego was replaced)."""
        self._previous = self._ego_state() | {"accel": 0.0}

    def terms(self) -> dict[str, float]:
        """The raw terms for the transition just made (each in [0, 1])."""
        w, dt, prev = self.weights, self.dt, self._previous
        now = self._ego_state()
        accel = (now["speed"] - prev["speed"]) / dt
        jerk = (accel - prev["accel"]) / dt
        steering_rate = (now["steering"] - prev["steering"]) / dt
        crashed = bool(self.env.unwrapped.vehicle.crashed)
        # after an impact highway-env separates the cars and stops them: the crash itself is TTC 0
        ttc = 0.0 if crashed else time_to_collision(self.env)
        terms = {
            "collision": float(crashed),
            "ttc": float(np.clip(1 - ttc / w.ttc_horizon, 0, 1)) if math.isfinite(ttc) else 0.0,
            "jerk": min(abs(jerk) / w.jerk_scale, 1.0),
            "steering_rate": min(abs(steering_rate) / w.steering_rate_scale, 1.0),
            "speed": float(np.clip((now["speed"] - SPEED_RANGE[0]) / (SPEED_RANGE[1] - SPEED_RANGE[0]), 0, 1)),
            "progress": max(now["x"] - prev["x"], 0.0) / (SPEED_RANGE[1] * dt),
        }
        self._previous = now | {"accel": accel}
        return terms

    def step(self, action):
        obs, default_reward, terminated, truncated, info = self.env.step(action)
        terms = self.terms()
        weighted = {name: self.weights.weight(name) * value for name, value in terms.items()}
        reward = float(sum(weighted.values()))
        info = dict(info, reward_terms=terms, reward_weighted=weighted, default_reward=float(default_reward))
        return obs, reward, terminated, truncated, info
