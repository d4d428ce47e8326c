"""The driving agents: the expert stays on the road, PilotNet learns, the seeds and figures are honest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlcasebook.drive import bc, envs, episodes
from mlcasebook.drive.experts import CarRacingExpert, HighwayExpert, track_errors
from mlcasebook.drive.pilotnet import (
    SPEED_SCALE,
    PilotNet,
    labels_from_expert,
    load_pilotnet,
    save_pilotnet,
    to_env_action,
)


@pytest.fixture(scope="module")
def expert_drive():
    """The expert on a training track for 300 steps: frames, actions and the worst track errors."""
    env = envs.make_env("carracing")
    obs, _ = env.reset(seed=7)
    expert = CarRacingExpert()
    frames, actions, targets, distances, headings = [], [], [], [], []
    for _ in range(300):
        action = expert.act(env, obs)
        frames.append(obs)
        actions.append(action)
        targets.append(expert.target_speed_)
        obs, _, terminated, truncated, _ = env.step(action)
        distance, heading, _ = track_errors(env)
        distances.append(distance)
        headings.append(heading)
    tiles = env.unwrapped.tile_visited_count
    env.close()
    return (np.asarray(frames), np.asarray(actions), np.asarray(targets), np.asarray(distances), np.asarray(headings),
            tiles)


def test_expert_keeps_carracing_on_track(expert_drive):
    _, actions, _, distances, headings, tiles = expert_drive
    assert distances.max() < episodes.TRACK_HALF_WIDTH, "the car's centre left the road"
    assert np.abs(headings).max() < np.pi / 4
    # and it makes progress: at ~3.4 m per tile, 300 steps at racing speed pass well over 60 tiles
    assert tiles > 60
    assert np.all((actions[:, 1] == 0) | (actions[:, 2] == 0)), "never gas and brake at once"


def test_one_bc_step_lowers_the_loss(expert_drive):
    frames, actions, targets, *_ = expert_drive
    torch.manual_seed(0)
    model = PilotNet().eval()  # eval: dropout off, so the two losses are comparable
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(frames[::5].copy())
    y = torch.from_numpy(labels_from_expert(actions[::5, 0], targets[::5]))
    before = bc.bc_loss(model, x, y)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = bc.bc_loss(model, x, y)
    assert float(after) < float(before.detach())


def test_shift_augmentation_corrects_steering_towards_the_road():
    frames = torch.zeros(64, 96, 96, 3, dtype=torch.uint8)
    frames[:, :84, 40:56] = 100  # a grey road down the middle
    targets = torch.zeros(64, 2)
    shifted, corrected = bc.shift_augment(frames, targets, 5, 0.05, torch.Generator().manual_seed(0))
    road_centre = (shifted[:, 10, :, 0].float() * torch.arange(96)).sum(1) / shifted[:, 10, :, 0].float().sum(1)
    offset = road_centre - 47.5  # the road moved right by this many pixels: the car is left of it
    assert torch.allclose(corrected[:, 0], 0.05 * offset, atol=1e-4)
    assert offset.abs().max() > 0
    assert torch.equal(shifted[:, 84:], frames[:, 84:]), "the dashboard stays in place"


def test_target_speed_becomes_gas_or_brake():
    labels = labels_from_expert(np.array([0.3]), np.array([60.0]))
    assert labels[0, 1] == pytest.approx(60 / SPEED_SCALE)
    slow, fast = to_env_action(labels[0], speed=40.0), to_env_action(labels[0], speed=80.0)
    assert slow[0] == fast[0] == pytest.approx(0.3)
    assert slow[1] > 0 and slow[2] == 0, "below the target: gas"
    assert fast[1] == 0 and fast[2] > 0, "above the target: brake"


def test_pilotnet_checkpoint_round_trip(tmp_path):
    model = PilotNet().eval()
    frames = torch.randint(0, 255, (2, 96, 96, 3), dtype=torch.uint8)
    save_pilotnet(tmp_path / "m.pt", model, {"env": "carracing"})
    loaded, meta = load_pilotnet(tmp_path / "m.pt")
    assert meta["env"] == "carracing"
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), model(frames))


def test_seed_ranges_are_disjoint():
    evaluation = {envs.eval_seed(i) for i in range(1000)}
    assert not evaluation & set(envs.TRAIN_SEEDS) and not evaluation & set(envs.DETECTOR_HELDOUT_SEEDS)
    assert not set(envs.TRAIN_SEEDS) & set(envs.DETECTOR_HELDOUT_SEEDS)
    config = bc.BCConfig(seed=3)
    assert config.episode_seed(5, 99) in envs.TRAIN_SEEDS


def test_autonomy_follows_pilotnet_formula():
    assert episodes.autonomy(0, 600) == 1.0
    # PilotNet's example: 10 interventions in 600 s → 90 % autonomy
    assert episodes.autonomy(10, 600) == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["highway-fast", "racetrack"])  # discrete meta-actions, continuous steering
def test_highway_expert_answers_in_the_env_action_space(name):
    env = envs.make_env(name, seed=3)
    expert = HighwayExpert()
    for _ in range(5):
        action = expert.act(env)
        assert env.action_space.contains(action)
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    env.close()


def test_unknown_names_give_clear_errors():
    from mlcasebook.core.errors import CasebookError

    with pytest.raises(CasebookError, match="unknown environment"):
        envs.make_env("mars")
    with pytest.raises(CasebookError, match="unknown agent"):
        episodes.make_agent("chauffeur", "carracing")
    with pytest.raises(CasebookError, match="needs a trained model"):
        episodes.make_agent("pilotnet", "carracing")


def test_a_resumed_bc_run_may_add_dagger_rounds_but_not_change_settings(tmp_path):
    import dataclasses
    import json

    from mlcasebook.core.errors import CasebookError

    config = bc.BCConfig(human_data=("laps.pt",))
    on_disk = json.loads(json.dumps(bc._settings(config)))  # what train_bc writes, read back
    more_rounds = bc._settings(dataclasses.replace(config, dagger_iterations=9))
    assert bc._without_rounds(on_disk) == bc._without_rounds(more_rounds)
    plain = bc._settings(bc.BCConfig())
    older = {key: value for key, value in plain.items() if key != "human_data"}  # before human laps existed
    assert bc._without_rounds(older) == bc._without_rounds(plain)
    work = tmp_path / "p.pt.work"
    work.mkdir()
    (work / "config.json").write_text(json.dumps(on_disk | {"lr": 0.5}))
    with pytest.raises(CasebookError, match="other settings"):
        bc.train_bc(tmp_path / "p.pt", config)


def test_human_laps_join_the_demonstrations(tmp_path, monkeypatch):
    """train_bc fits on the expert's laps plus the recorded human laps (collection and fitting stubbed)."""
    laps = tmp_path / "laps.pt"
    bc._save_data(laps, np.full((3, 96, 96, 3), 7, np.uint8), np.zeros((3, 2), np.float32), [{"mode": "human"}])
    demo = (np.zeros((5, 96, 96, 3), np.uint8), np.zeros((5, 2), np.float32), [{"return": 900.0}])
    monkeypatch.setattr(bc, "collect_stage", lambda *args, **kwargs: demo)
    seen = []

    def fake_fit(model, optimizer, frames, labels, *args):
        seen.append(frames)
        return [0.1]

    monkeypatch.setattr(bc, "fit", fake_fit)
    config = bc.BCConfig(recovery_episodes=0, dagger_iterations=0, human_data=(str(laps),))
    bc.train_bc(tmp_path / "p.pt", config, log=lambda message: None)
    assert len(seen[0]) == 5 + 3 and (seen[0][5:] == 7).all()
    bc.train_bc(tmp_path / "p.pt", config, log=lambda message: None)  # the same run resumes without complaint
