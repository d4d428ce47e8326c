"""The RL half of the drive case: reward terms add up as configured, TTC, collisions, CLI errors."""

from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import run_case_cli

pytest.importorskip("highway_env")

from mlcasebook.drive.rewards import TERMS, RewardWeights, SafeComfortReward, time_to_collision  # noqa: E402
from mlcasebook.drive.rl import evaluate_highway, make_rl_env  # noqa: E402

# unusual weights, so that a sum with the defaults (or a missing term) would not match by chance
WEIGHTS = RewardWeights(collision=-7.0, ttc=-1.5, jerk=-0.3, steering_rate=-0.2, speed=1.3, progress=0.4)


def _only_ego_and_leader(env, gap_m: float, ego_speed: float, leader_speed: float):
    """Leave the ego and one car ``gap_m`` metres (centre to centre) ahead of it in its lane."""
    base = env.unwrapped
    ego = base.vehicle
    leader = next(v for v in base.road.vehicles if v is not ego)
    leader.position = ego.position + np.array([gap_m, 0.0])
    leader.heading, ego.heading = 0.0, 0.0
    leader.speed, ego.speed = leader_speed, ego_speed
    leader.target_speed = leader_speed
    base.road.vehicles = [ego, leader]
    return ego, leader


def test_reward_is_the_weighted_sum_of_its_terms():
    env = make_rl_env("ours", WEIGHTS)
    env.reset(seed=123)
    rng = np.random.default_rng(0)
    for _ in range(8):
        _, reward, terminated, truncated, info = env.step(int(rng.integers(5)))
        assert set(info["reward_terms"]) == set(TERMS)
        for name, value in info["reward_terms"].items():
            assert 0.0 <= value <= 1.0 + 1e-9, name
            assert info["reward_weighted"][name] == pytest.approx(getattr(WEIGHTS, name) * value)
        assert reward == pytest.approx(sum(getattr(WEIGHTS, n) * v for n, v in info["reward_terms"].items()))
        assert "rewards" in info and "default_reward" in info  # highway-env's own parts stay visible
        if terminated or truncated:
            break
    env.close()


def test_collision_gives_the_safety_penalty():
    env = make_rl_env("ours", WEIGHTS)
    env.reset(seed=7)
    _only_ego_and_leader(env, gap_m=4.0, ego_speed=25.0, leader_speed=0.0)  # bumpers already touching
    _, reward, terminated, _, info = env.step(1)
    assert terminated and info["crashed"]
    assert info["reward_terms"]["collision"] == 1.0
    assert info["reward_terms"]["ttc"] == 1.0  # a crash is a time-to-collision of 0
    assert info["reward_weighted"]["collision"] == WEIGHTS.collision
    assert reward <= WEIGHTS.collision + WEIGHTS.ttc + WEIGHTS.speed + WEIGHTS.progress * 2
    env.close()


def test_time_to_collision_to_the_leader():
    env = make_rl_env("ours", WEIGHTS)
    env.reset(seed=11)
    _only_ego_and_leader(env, gap_m=20.0, ego_speed=25.0, leader_speed=15.0)
    # bumper gap 20 - 5 = 15 m closing at 10 m/s
    assert time_to_collision(env) == pytest.approx(1.5)
    env.unwrapped.road.vehicles[1].speed = 30.0  # pulling away: no collision course
    assert time_to_collision(env) == float("inf")
    env.close()


def test_jerk_term_from_the_speed_trace():
    env = SafeComfortReward(make_rl_env("default"), WEIGHTS)
    env.reset(seed=5)
    ego = env.unwrapped.vehicle
    start = env._previous["speed"]
    ego.speed = start + 4.0  # +4 m/s in one 1-s step from rest: accel 4, jerk 4 m/s³
    assert env.terms()["jerk"] == pytest.approx(4.0 / WEIGHTS.jerk_scale)
    assert env.terms()["jerk"] == pytest.approx(4.0 / WEIGHTS.jerk_scale)  # accel back to 0: jerk -4
    env.close()


class _Brake:
    """SLOWER every step: slow, smooth, and a test of the evaluation's bookkeeping."""

    def act(self, obs) -> int:
        return 4


def test_evaluation_figures_are_consistent():
    figures = evaluate_highway(_Brake(), episodes=1, seeds=[100_003], progress=False)
    assert figures["episodes"] == 1 and figures["seeds"] == "100003..100003"
    assert 0.0 <= figures["collision_rate"] <= 1.0
    assert figures["collision_rate_95ci"][0] <= figures["collision_rate"] <= figures["collision_rate_95ci"][1]
    assert figures["mean_speed"] < 25.0  # braking from 25 m/s never speeds up
    with pytest.raises(Exception, match="100000"):
        evaluate_highway(_Brake(), episodes=1, seeds=[5], progress=False)


def run_main(capsys, *args) -> tuple[int, str, str]:
    return run_case_cli(capsys, "drive", *args)


def test_ppo_eval_without_a_checkpoint_is_a_clear_error(capsys, tmp_path):
    code, _, err = run_main(capsys, "ppo-eval", "--model", tmp_path / "missing", "--episodes", 1)
    assert code == 2
    assert "no PPO checkpoint" in err and "ppo-train" in err and "Traceback" not in err


def test_ppo_train_rejects_bad_options(capsys, tmp_path):
    code, _, err = run_main(capsys, "ppo-train", "--reward", "fastest", "--out", tmp_path, "--timesteps", 10)
    assert code == 2 and "unknown reward" in err
    code, _, err = run_main(capsys, "ppo-train", "--reward", "default", "--w-jerk", "-1", "--out", tmp_path,
                            "--timesteps", 10)
    assert code == 2 and "--reward ours" in err


def _expert_action(env, expert) -> str:
    base = env.unwrapped
    return base.action_type.actions[int(expert.act(env))]


def test_highway_expert_slows_then_escapes_a_slow_leader():
    from mlcasebook.drive.experts import HighwayExpert

    expert = HighwayExpert()
    env = make_rl_env("default")
    env.reset(seed=11)
    ego, _ = _only_ego_and_leader(env, gap_m=25.0, ego_speed=25.0, leader_speed=12.0)
    ego.speed_index = 1  # target 25 m/s: too fast 25 m behind a car at 12 m/s
    assert _expert_action(env, expert) == "SLOWER"
    ego.speed_index, ego.speed = 0, 20.0  # already at the lowest target: the way out is sideways
    assert _expert_action(env, expert) in ("LANE_LEFT", "LANE_RIGHT")
    env.close()


def test_highway_expert_speeds_up_on_a_free_road():
    from mlcasebook.drive.experts import HighwayExpert

    env = make_rl_env("default")
    env.reset(seed=11)
    ego, leader = _only_ego_and_leader(env, gap_m=150.0, ego_speed=25.0, leader_speed=25.0)
    ego.speed_index = 1
    assert _expert_action(env, HighwayExpert()) == "FASTER"
    env.close()


def test_warm_start_clones_the_expert_into_the_policy():
    from stable_baselines3 import PPO

    from mlcasebook.drive.rl import expert_demonstrations, warm_start

    observations, actions, returns = expert_demonstrations(1, "ours", progress=False)
    assert len(observations) == len(actions) == len(returns) > 0
    model = PPO("MlpPolicy", make_rl_env("ours"), n_steps=64, seed=0, device="cpu")
    before = warm_start(model, observations, actions, returns, epochs=0)
    after = warm_start(model, observations, actions, returns, epochs=500, batch_size=32)
    majority = np.bincount(actions).max() / len(actions)
    assert after["actor_loss"] < before["actor_loss"] and after["train_accuracy"] > max(0.8, majority)
    assert after["critic_loss"] < before["critic_loss"]
