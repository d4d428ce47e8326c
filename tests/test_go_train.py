"""Training loop: one tiny iteration end to end, resume, refusal to mix settings, kill -9 recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mlcasebook.core.errors import CasebookError
from mlcasebook.go.net import load_net
from mlcasebook.go.selfplay import SelfPlayConfig, play_game
from mlcasebook.go.train import TrainConfig, Trainer

TINY = dict(size=5, komi=0.5, channels=8, blocks=2, history=2, games_per_iteration=2, workers=1,
            full_simulations=8, fast_simulations=4, full_search_probability=0.5, steps_per_iteration=3,
            batch_size=16, gate_games=2, gate_simulations=4)


def test_self_play_game_yields_consistent_examples():
    from mlcasebook.go.mcts import RolloutEvaluator

    config = SelfPlayConfig(size=5, komi=0.5, full_simulations=6, fast_simulations=3, history=2,
                            full_search_probability=0.5)
    examples, info = play_game(RolloutEvaluator(), config, np.random.default_rng(0))
    moves = len(examples)
    assert moves == info.moves and examples.planes.shape == (moves, 13, 5, 5)  # 7 + 6 liberty planes
    assert np.allclose(examples.policy[examples.policy_weight > 0].sum(1), 1)
    # values alternate with the side to move (no draws with komi 0.5)
    assert set(np.unique(examples.value)) <= {-1.0, 1.0}
    assert np.all(examples.value[:-1] == -examples.value[1:]) or info.resigned
    assert examples.ownership.shape == (moves, 5, 5)


def test_one_iteration_then_resume(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(run, TrainConfig(**TINY))
    state = trainer.run(iterations=1)
    assert state.iteration == 1 and state.games == 2 and state.positions > 0
    record = state.history[0]
    for key in ("loss_policy", "loss_value", "loss_ownership", "gate_win_rate", "false_resigns", "selfplay_cpu_s"):
        assert key in record
    # a new run has measured no false-resign rate yet, so its first games are played out
    assert record["resign_enabled"] is False and record["resigned_games"] == 0
    assert record["train_steps"] == trainer.config.steps_for(record["positions"]) == state.steps
    assert list((run / "replay").glob("it00001_w*.npz"))
    load_net(run / "best.ckpt")
    # a fresh process would see the committed state and continue from it
    resumed = Trainer(run)
    assert resumed.state.iteration == 1
    resumed.run(iterations=1)
    assert json.loads((run / "state.json").read_text())["iteration"] == 2
    with pytest.raises(CasebookError, match="other settings"):
        Trainer(run, TrainConfig(**(TINY | {"blocks": 3})))


def test_uncommitted_files_are_discarded_on_resume(tmp_path):
    run = tmp_path / "run"
    Trainer(run, TrainConfig(**TINY))
    strays = [run / "replay" / "it00001_w0.npz", run / "nets" / "it00001.ckpt", run / "generations" / "gen0001.ckpt"]
    for stray in strays:
        stray.write_bytes(b"written by an iteration that never committed")
    (run / ".best.ckpt.abc.tmp").write_bytes(b"x")
    trainer = Trainer(run)
    assert not any(stray.exists() for stray in strays) and not list(run.glob(".*.tmp"))
    assert (run / "best.ckpt").read_bytes() == trainer.best_path().read_bytes()
    load_net(run / trainer.state.latest)


def test_kill_minus_9_loses_at_most_the_current_iteration(tmp_path):
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        from mlcasebook.go.train import TrainConfig, Trainer
        Trainer({str(run)!r}, TrainConfig(**{TINY!r})).run(iterations=50)
    """)
    env = os.environ | {"OMP_NUM_THREADS": "1", "MLCASEBOOK_NO_PROGRESS": "1"}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state_file = run / "state.json"
            if state_file.exists() and json.loads(state_file.read_text())["iteration"] >= 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the first iteration did not commit within 60 s")
        time.sleep(0.3)  # most likely mid-iteration now
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    committed = json.loads((run / "state.json").read_text())["iteration"]
    assert committed >= 1
    trainer = Trainer(run)
    assert trainer.state.iteration == committed
    assert all(int(p.name[2:7]) <= committed for p in (run / "replay").glob("it*.npz"))
    assert [p.name for p in (run / "nets").glob("*.ckpt")] == [f"it{committed:05d}.ckpt"]
    assert (run / "best.ckpt").read_bytes() == trainer.best_path().read_bytes()
    trainer.run(iterations=1)
    assert trainer.state.iteration == committed + 1


def test_self_play_in_two_worker_processes(tmp_path):
    trainer = Trainer(tmp_path / "run", TrainConfig(**(TINY | {"workers": 2, "gate_games": 0})))
    state = trainer.run(iterations=1)
    assert state.games == 2 and len(list((tmp_path / "run" / "replay").glob("it00001_w*.npz"))) == 2
    assert state.generation == 1 and (tmp_path / "run" / "generations" / "gen0001.ckpt").is_file()
    # a promoted network carries the compute that made it, its own iteration included (the Elo curve's x)
    assert load_net(tmp_path / "run" / "generations" / "gen0001.ckpt")[1]["cpu_seconds"] == \
        pytest.approx(state.cpu_seconds)


def test_games_played_in_lockstep_are_complete_games():
    from mlcasebook.go.mcts import RolloutEvaluator
    from mlcasebook.go.selfplay import play_games

    config = SelfPlayConfig(size=5, komi=0.5, full_simulations=6, fast_simulations=3, history=2)
    played = play_games(RolloutEvaluator(), config, 3, np.random.default_rng(1))
    assert len(played) == 3
    for examples, info in played:
        assert len(examples) == info.moves == len(info.actions) or info.resigned
        assert info.result[0] in "BW0"
        assert np.allclose(examples.policy.sum(1), 1)


def test_pretraining_reports_held_out_move_prediction(tmp_path):
    from mlcasebook.go.mcts import RolloutEvaluator
    from mlcasebook.go.selfplay import Examples
    from mlcasebook.go.train import evaluate_examples

    config = SelfPlayConfig(size=5, komi=0.5, full_simulations=4, fast_simulations=2, history=2,
                            full_search_probability=1.0)
    games = [play_game(RolloutEvaluator(), config, np.random.default_rng(seed))[0] for seed in range(8)]
    data = Examples.concat(games)
    # a rule the net can learn from the planes: the "expert" always passes (always legal), and Black wins
    data.policy[:] = 0.0
    data.policy[:, -1] = 1.0
    data.value[:] = np.where(data.planes[:, 4, 0, 0] > 0, 1.0, -1.0)  # plane 4: Black to move
    order = np.random.default_rng(0).permutation(len(data))
    train, held_out = (Examples(*(getattr(data, f)[rows] for f in Examples.fields()))
                       for rows in (order[: len(data) // 2], order[len(data) // 2:]))
    trainer = Trainer(tmp_path / "run", TrainConfig(**(TINY | {"batch_size": 32, "pretrain_learning_rate": 3e-3})))
    before = evaluate_examples(load_net(trainer.run_dir / trainer.state.latest)[0], held_out)
    metrics = trainer.pretrain(train, steps=150, held_out=held_out, corpus_cpu_seconds=1000.0)
    assert metrics["held_out_positions"] == len(held_out)
    assert metrics["held_out_policy_top1"] == 1.0 and before["policy_top1"] < 0.5
    assert metrics["held_out_policy_loss"] < before["policy_loss"] / 2
    assert metrics["held_out_value_sign_accuracy"] > 0.9
    state = json.loads((trainer.run_dir / "state.json").read_text())
    assert state["generation"] == 1 and state["pretraining"]["held_out_policy_top1"] == 1.0
    # the expert games' compute is charged to the run and to the SL network (the Elo curve's x axis)
    assert state["cpu_seconds"] == pytest.approx(1000.0 + metrics["train_s"])
    assert load_net(trainer.run_dir / "generations" / "gen0001.ckpt")[1]["cpu_seconds"] == state["cpu_seconds"]


def test_training_steps_follow_the_new_data():
    config = TrainConfig(batch_size=128, steps_per_iteration=200, samples_per_position=8)
    assert config.steps_for(800) == 50  # 8 samples for each of 800 new positions, in batches of 128
    assert config.steps_for(10_000) == 200  # capped
    assert config.steps_for(1) == 1
    assert TrainConfig(steps_per_iteration=80, samples_per_position=0).steps_for(800) == 80


def test_resignation_waits_for_a_measured_false_resign_rate():
    from mlcasebook.go.train import resignation_allowed

    def iteration(checks, false):
        return {"false_resign_checks": checks, "false_resigns": false}

    assert not resignation_allowed([])  # nothing measured: play games out
    assert not resignation_allowed([iteration(6, 0)])  # too few checks to trust
    assert resignation_allowed([iteration(12, 0)])
    assert not resignation_allowed([iteration(12, 1)], max_false_rate=0.05)  # 8 % > 5 %
    # the most recent iterations are pooled until there are enough checks
    assert resignation_allowed([iteration(20, 5), iteration(30, 1), iteration(2, 0)])
    assert not resignation_allowed([iteration(30, 0), iteration(8, 3), iteration(2, 0)])


def test_self_play_resigns_late_and_only_when_allowed():
    from dataclasses import replace

    from mlcasebook.go.mcts import RolloutEvaluator
    from mlcasebook.go.selfplay import play_games

    # a threshold almost every search crosses: with resignation on, a game ends at the first chance,
    # which is move N²/5 = 5 here (and after two hopeless moves of the side in a row)
    config = SelfPlayConfig(size=5, komi=0.5, full_simulations=4, fast_simulations=2, history=2,
                            resign_threshold=-1.0, min_resign_fraction=0.2, resign_consecutive=2,
                            no_resign_fraction=0.0)
    resigning = play_games(RolloutEvaluator(), config, 2, np.random.default_rng(0))
    assert all(info.resigned and 5 <= info.moves <= 9 for _, info in resigning)
    played_out = play_games(RolloutEvaluator(), replace(config, resign_enabled=False), 2, np.random.default_rng(0))
    for _, info in played_out:
        assert not info.resigned and info.resign_disabled and info.would_resign_move >= 5
        # a check of the rule only if resigning would have cut N²/4 moves or more
        assert info.resign_check == (info.moves - info.would_resign_move >= 25 / 4)
