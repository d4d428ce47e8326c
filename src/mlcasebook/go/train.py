"""The training loop: self-play in worker processes -> replay buffer -> training -> gating.

Everything a run needs to continue lives in its folder, and an iteration *commits* by rewriting
``state.json`` atomically as its very last step; every other file is written under a new name
before that, so the state always points at complete files:

    run/state.json                iteration, generation, latest net, counters, compute, metrics, config
    run/generations/gen0007.ckpt  every promoted network; the state's generation plays self-play
    run/nets/it00012.ckpt         the last trained network (the next candidate starts from it)
    run/replay/it00012_w1.npz     self-play examples, one file per iteration and worker
    run/best.ckpt                 a copy of the current best network, for `mlcasebook go gtp --model`

``kill -9`` at any moment loses at most the iteration in progress: on restart, files the state
does not name (newer replay, nets and generations) are deleted and the iteration is replayed. The state is small (two
networks of a few MB, the replay window); the optimizer's moments are not kept (Adam warms up
again within a few steps), which keeps a resumable run cheap to carry between machines.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import atomic_write_bytes, atomic_write_text
from ..core.errors import CasebookError
from ..core.progress import track
from .board import BLACK, EMPTY, GoState
from .mcts import MCTS, MCTSConfig, sample_action
from .net import GoNet, NetConfig, NetEvaluator, load_net, losses, save_net, transform, transform_policy
from .selfplay import Examples, SelfPlayConfig, play_games


@dataclass
class TrainConfig:
    size: int = 9
    komi: float = 7.0
    channels: int = 64
    blocks: int = 6
    history: int = 4
    liberties: bool = True
    games_per_iteration: int = 32
    workers: int = 2
    full_simulations: int = 200
    fast_simulations: int = 40
    full_search_probability: float = 0.25
    replay_iterations: int = 20  # the window: examples from the last N iterations
    steps_per_iteration: int = 200  # at most; see samples_per_position
    # training samples drawn per new self-play position (KataGo's -max-train-bucket-per-new-data:
    # 8 in its synchronous loop): more reuse overfits the few games an iteration plays (a first
    # self-play run from an SL net, at ~16x reuse and the full learning rate, lost both its gates:
    # 0.40 and 0.15). 0: always steps_per_iteration
    samples_per_position: float = 8.0
    max_false_resign: float = 0.05  # AlphaGo Zero's bound on the false-resign rate
    batch_size: int = 128
    learning_rate: float = 1e-3  # self-play training
    pretrain_learning_rate: float = 1e-3  # the supervised stage's peak (cosine-decayed to 0)
    weight_decay: float = 1e-4
    gate_games: int = 20
    gate_simulations: int = 100
    gate_threshold: float = 0.55
    seed: int = 0

    def selfplay(self, resign_enabled: bool = True) -> SelfPlayConfig:
        return SelfPlayConfig(self.size, self.komi, self.full_simulations, self.fast_simulations,
                              self.full_search_probability, history=self.history, liberties=self.liberties,
                              resign_enabled=resign_enabled)

    def steps_for(self, new_positions: int) -> int:
        """Training steps after an iteration that produced ``new_positions`` examples."""
        if self.samples_per_position <= 0:
            return self.steps_per_iteration
        return max(1, min(self.steps_per_iteration, math.ceil(self.samples_per_position * new_positions
                                                               / self.batch_size)))

    def net(self) -> NetConfig:
        return NetConfig(self.channels, self.blocks, self.history, liberties=self.liberties)


def resignation_allowed(history: list[dict], max_false_rate: float = 0.05, min_checks: int = 10) -> bool:
    """Whether self-play may resign, from the false-resign rate measured so far (AlphaGo Zero kept
    it under 5 %). Played-out games in which a side would have resigned well before the end are the
    checks (``GameInfo.resign_check``); the most recent iterations are pooled until ``min_checks``
    of them. Without enough evidence resignation stays off, so a young network, whose values are
    noise, plays its games out
    (measured without this: a Zero run resigned 10 of 16 games with its random first network; by the
    third iteration its value net favoured Black so strongly that White resigned every game at
    about move 11, and not one played-out game had checked a resignation)."""
    checks = false = 0
    for record in reversed(history):
        checks += record.get("false_resign_checks", 0)
        false += record.get("false_resigns", 0)
        if checks >= min_checks:
            break
    return checks >= min_checks and false <= max_false_rate * checks


@dataclass
class RunState:
    config: dict
    iteration: int = 0  # iterations committed
    games: int = 0
    positions: int = 0
    steps: int = 0
    generation: int = 0  # promotions of the best network: generations/gen{generation:04d}.ckpt plays
    latest: str = "nets/it00000.ckpt"  # the committed trained network, relative to the run folder
    cpu_seconds: float = 0.0  # wall time x busy processes, the compute budget's unit
    history: list[dict] = field(default_factory=list)
    pretraining: dict | None = None  # the AlphaGo pipeline's supervised stage, if any


def _worker_games(best_path: str, config: SelfPlayConfig, games: int, seed: int) -> tuple[dict, list[dict]]:
    """Runs in a worker process: ``games`` self-play games with the best network."""
    torch.set_num_threads(1)
    evaluator = NetEvaluator.load(best_path, symmetry="random")
    evaluator.rng = np.random.default_rng(seed)
    rng = np.random.default_rng(seed)
    parts, infos = [], []
    for first in range(0, games, config.parallel_games):
        for examples, info in play_games(evaluator, config, min(config.parallel_games, games - first), rng):
            parts.append(examples)
            infos.append({k: v for k, v in info.__dict__.items() if k != "actions"})
    merged = Examples.concat(parts)
    return {name: getattr(merged, name) for name in Examples.fields()}, infos


class Trainer:
    """One resumable training run in ``run_dir``."""

    def __init__(self, run_dir: Path, config: TrainConfig | None = None, track_mlflow: bool = False):
        self.run_dir = Path(run_dir)
        self.replay_dir = self.run_dir / "replay"
        self.state_path = self.run_dir / "state.json"
        self.track_mlflow = track_mlflow
        if self.state_path.exists():
            stored = json.loads(self.state_path.read_text())
            self.state = RunState(**stored)
            self.config = TrainConfig(**self.state.config)
            if config is not None and asdict(config) != self.state.config:
                changed = {k for k, v in asdict(config).items() if self.state.config.get(k) != v}
                raise CasebookError(f"{run_dir} was started with other settings ({', '.join(sorted(changed))})",
                                    hint="resume without changing settings, or use a new --run folder")
            self._discard_uncommitted()
        else:
            self.config = config or TrainConfig()
            self.state = RunState(asdict(self.config))
            self.run_dir.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(self.config.seed)
            initial = GoNet(self.config.net())
            save_net(self._generation_path(0), initial, {"generation": 0, "cpu_seconds": 0.0})
            save_net(self.run_dir / self.state.latest, initial, {"iteration": 0})
            self._commit()
            self._publish_best()
        self.replay_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- persistence
    def _commit(self) -> None:
        atomic_write_text(self.state_path, json.dumps(asdict(self.state), indent=1))

    def _generation_path(self, generation: int) -> Path:
        return self.run_dir / "generations" / f"gen{generation:04d}.ckpt"

    def best_path(self) -> Path:
        return self._generation_path(self.state.generation)

    def _publish_best(self) -> None:
        """Refresh the convenience copy best.ckpt from the committed generation."""
        atomic_write_bytes(self.run_dir / "best.ckpt", self.best_path().read_bytes())

    def _discard_uncommitted(self) -> None:
        """Files of an iteration that never committed (the process died mid-iteration)."""
        for path in self.replay_dir.glob("it*.npz"):
            if int(path.name[2:7]) > self.state.iteration:
                path.unlink()
        for path in (self.run_dir / "nets").glob("*.ckpt"):
            if path != self.run_dir / self.state.latest:
                path.unlink()
        for path in (self.run_dir / "generations").glob("gen*.ckpt"):
            if int(path.name[3:7]) > self.state.generation:
                path.unlink()
        for path in self.run_dir.rglob(".*.tmp"):
            path.unlink()
        self._publish_best()

    def _write_shard(self, iteration: int, worker: int, arrays: dict) -> None:
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(self.replay_dir / f"it{iteration:05d}_w{worker}.npz", buffer.getvalue())

    def _replay(self) -> Examples:
        first = self.state.iteration + 1 - self.config.replay_iterations
        parts = []
        for path in sorted(self.replay_dir.glob("it*.npz")):
            if int(path.name[2:7]) >= first:
                with np.load(path, allow_pickle=False) as data:
                    parts.append(Examples(*(data[name] for name in Examples.fields())))
            else:
                path.unlink()  # fell out of the window: keep the run folder small
        return Examples.concat(parts)

    # ---------------------------------------------------------------- the three phases
    def self_play(self, iteration: int, pool: ProcessPoolExecutor | None = None,
                  resign_enabled: bool = True) -> tuple[int, list[dict], float]:
        """This iteration's games with the best network, in ``pool``'s processes (inline without one)."""
        cfg = self.config
        workers = self._workers()
        shares = [cfg.games_per_iteration // workers + (w < cfg.games_per_iteration % workers) for w in range(workers)]
        seeds = [cfg.seed * 1_000_003 + iteration * 101 + w for w in range(workers)]
        best = str(self.best_path())
        play = cfg.selfplay(resign_enabled)
        started = time.perf_counter()
        if pool is None:
            results = [_worker_games(best, play, n, s) for n, s in zip(shares, seeds, strict=True)]
        else:
            futures = [pool.submit(_worker_games, best, play, n, s) for n, s in zip(shares, seeds, strict=True)]
            results = [f.result() for f in futures]
        seconds = time.perf_counter() - started
        positions, infos = 0, []
        for worker, (arrays, worker_infos) in enumerate(results):
            self._write_shard(iteration, worker, arrays)
            positions += len(arrays["value"])
            infos += worker_infos
        return positions, infos, seconds * (workers if pool is not None else 1)

    def _workers(self) -> int:
        return max(1, min(self.config.workers, self.config.games_per_iteration))

    def train_steps(self, iteration: int, data: Examples | None = None, steps: int | None = None,
                    out_name: str | None = None, cosine: bool = False,
                    learning_rate: float | None = None) -> tuple[dict, float, str]:
        """``steps`` minibatch updates of the latest network on ``data`` (default: the replay
        window), saved as a new file (not yet committed); returns metrics, CPU seconds, its name.

        ``cosine`` decays the learning rate to zero over the steps (a one-off supervised stage
        ends better that way; self-play keeps a constant rate because its data keeps moving)."""
        cfg = self.config
        torch.manual_seed(cfg.seed + iteration)
        rng = np.random.default_rng(cfg.seed + iteration)
        data = self._replay() if data is None else data
        steps = cfg.steps_per_iteration if steps is None else steps
        net, _ = load_net(self.run_dir / self.state.latest)
        net.train()
        peak = cfg.learning_rate if learning_rate is None else learning_rate
        optimizer = torch.optim.AdamW(net.parameters(), lr=peak, weight_decay=cfg.weight_decay)
        started = time.process_time()  # CPU time of every thread of this process: the budget's unit
        sums: dict[str, float] = {}
        for step in track(range(steps), f"training (iteration {iteration})"):
            if cosine:
                for group in optimizer.param_groups:
                    group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * step / steps))
            index = rng.integers(0, len(data), size=min(cfg.batch_size, len(data)))
            symmetry = int(rng.integers(8))  # one random symmetry per batch: cheap augmentation
            planes = transform(torch.from_numpy(data.planes[index].astype(np.float32)), symmetry)
            policy = torch.from_numpy(transform_policy(data.policy[index], symmetry, cfg.size))
            weight = torch.from_numpy(data.policy_weight[index])
            ownership = transform(torch.from_numpy(data.ownership[index].astype(np.float32)), symmetry)
            out = net(planes)
            # fast-search moves carry no policy target (weight 0); they still train value and ownership
            parts = losses(out, policy, torch.from_numpy(data.value[index]), ownership,
                           torch.from_numpy(data.score[index]), ownership_weight=1.5 / cfg.size**2,
                           policy_weight=weight)
            optimizer.zero_grad()
            parts["total"].backward()
            optimizer.step()
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        seconds = time.process_time() - started
        name = out_name or f"nets/it{iteration:05d}.ckpt"
        save_net(self.run_dir / name, net.eval(), {"iteration": iteration})
        metrics = {f"loss_{k}": v / max(1, steps) for k, v in sums.items()} | {"replay_positions": len(data)}
        return metrics, seconds, name

    def pretrain(self, examples: Examples, steps: int, held_out: Examples | None = None,
                 corpus_cpu_seconds: float = 0.0) -> dict:
        """AlphaGo's first stage: supervised learning from expert games, before any self-play.
        The result becomes the best network (generation 1) that self-play then improves.
        ``held_out`` games (never trained on) measure move-prediction accuracy and value error.
        ``corpus_cpu_seconds``: the compute that made the expert games (GNU Go's, for a generated
        corpus), charged to the run so that SL, SL + self-play and Zero compare at equal compute."""
        if self.state.iteration > 0 or self.state.pretraining is not None:
            raise CasebookError(f"{self.run_dir} has already trained", hint="pretrain a fresh --run folder")
        metrics, seconds, name = self.train_steps(0, examples, steps, out_name="nets/pretrained.ckpt", cosine=True,
                                                  learning_rate=self.config.pretrain_learning_rate)
        net, _ = load_net(self.run_dir / name)
        if held_out is not None:
            metrics |= {f"held_out_{k}": v for k, v in evaluate_examples(net, held_out).items()}
        cpu_seconds = self.state.cpu_seconds + corpus_cpu_seconds + seconds
        save_net(self._generation_path(1), net, {"generation": 1, "pretrained_positions": len(examples),
                                                 "cpu_seconds": cpu_seconds})
        self.state.generation, self.state.latest = 1, name
        self.state.pretraining = metrics | {"positions": len(examples), "steps": steps, "train_s": seconds,
                                            "corpus_cpu_s": corpus_cpu_seconds}
        self.state.cpu_seconds = cpu_seconds
        self._commit()
        self._after_commit()
        return self.state.pretraining

    def _after_commit(self) -> None:
        """Tidy up after a commit: nets the state no longer names go, best.ckpt is refreshed."""
        for path in (self.run_dir / "nets").glob("*.ckpt"):
            if path != self.run_dir / self.state.latest:
                path.unlink()
        self._publish_best()

    def gate(self, iteration: int, candidate_name: str) -> tuple[float, float]:
        """Candidate vs best, alternating colours, a little opening randomness so games differ."""
        cfg = self.config
        if cfg.gate_games == 0:
            return 1.0, 0.0
        candidate = NetEvaluator.load(self.run_dir / candidate_name, "none")
        best = NetEvaluator.load(self.best_path(), "none")
        rng = np.random.default_rng(cfg.seed + 7 * iteration)
        started, score = time.process_time(), 0.0
        for game in range(cfg.gate_games):
            colours = {BLACK: candidate, 2: best} if game % 2 == 0 else {BLACK: best, 2: candidate}
            searches = {c: MCTS(e, MCTSConfig(batch_size=8), seed=game) for c, e in colours.items()}
            state = GoState(cfg.size, cfg.komi)
            while not state.is_over() and state.move_number < 3 * cfg.size * cfg.size:
                opening = state.move_number < 4  # a little randomness, so the gating games differ
                result = searches[state.to_play].search(state, simulations=cfg.gate_simulations, allow_pass=not opening)
                state.play(sample_action(result, 1.0 if opening else 0.0, rng, state.pass_action))
            winner = state.winner()
            candidate_colour = BLACK if game % 2 == 0 else 2
            score += 0.5 if winner == EMPTY else float(winner == candidate_colour)
        return score / cfg.gate_games, time.process_time() - started

    # ---------------------------------------------------------------- the loop
    def run(self, iterations: int | None = None, hours: float | None = None) -> RunState:
        """Run until ``iterations`` more iterations or ``hours`` of wall time (checked between iterations)."""
        if iterations is None and hours is None:
            raise CasebookError("say how long to train", hint="--iterations N or --hours H")
        from ..core.tracking import tracked_run

        deadline = None if hours is None else time.monotonic() + 3600 * hours
        done = 0
        workers = self._workers()
        # one pool for the whole session: spawning workers (and importing torch) costs seconds each
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
        with tracked_run("go", f"train-{self.run_dir.name}", enabled=self.track_mlflow) as run, \
                pool if pool is not None else _no_pool():
            run.params(asdict(self.config))
            while (iterations is None or done < iterations) and (deadline is None or time.monotonic() < deadline):
                iteration = self.state.iteration + 1
                resign_enabled = resignation_allowed(self.state.history, self.config.max_false_resign)
                positions, infos, selfplay_cpu = self.self_play(iteration, pool, resign_enabled)
                steps = self.config.steps_for(positions)
                metrics, train_seconds, candidate = self.train_steps(iteration, steps=steps)
                win_rate, gate_seconds = self.gate(iteration, candidate)
                promoted = win_rate >= self.config.gate_threshold
                if promoted:
                    net, _ = load_net(self.run_dir / candidate)
                    # the compute that made this network, this iteration included (the Elo curve's x axis)
                    meta = {"generation": self.state.generation + 1, "iteration": iteration,
                            "cpu_seconds": self.state.cpu_seconds + selfplay_cpu + train_seconds + gate_seconds}
                    # every promoted network is kept (a few MB each) for the Elo-over-training curve
                    save_net(self._generation_path(self.state.generation + 1), net, meta)
                    self.state.generation += 1
                no_resign = [i for i in infos if i["resign_disabled"] and i["resign_check"]]
                record = metrics | {
                    "iteration": iteration, "games": len(infos), "positions": positions,
                    "mean_game_length": float(np.mean([i["moves"] for i in infos])),
                    "black_win_rate": float(np.mean([i["result"].startswith("B") for i in infos])),
                    "resign_enabled": resign_enabled, "train_steps": steps,
                    "resigned_games": int(sum(i["resigned"] for i in infos)),
                    "false_resign_checks": len(no_resign),
                    "false_resigns": int(sum(i["false_resign"] for i in no_resign)),
                    "gate_win_rate": win_rate, "promoted": promoted,
                    # CPU seconds (self-play: wall x workers, one thread each; the rest: this process)
                    "selfplay_cpu_s": selfplay_cpu, "train_s": train_seconds, "gate_s": gate_seconds,
                }
                self.state.iteration = iteration
                self.state.games += len(infos)
                self.state.positions += positions
                self.state.steps += steps
                self.state.cpu_seconds += selfplay_cpu + train_seconds + gate_seconds
                self.state.history.append(record)
                self.state.latest = candidate
                self._commit()  # the commit point: everything above is now durable
                self._after_commit()
                run.metrics({k: float(v) for k, v in record.items()}, step=iteration)
                done += 1
        return self.state


@torch.no_grad()
def evaluate_examples(net: GoNet, examples: Examples, batch_size: int = 512) -> dict[str, float]:
    """Move prediction on examples the net never saw (AlphaGo's SL policy figure: 57 % top-1 on
    KGS moves): policy cross-entropy and top-1 accuracy over examples with a policy target, value
    MSE and how often the value's sign names the winner."""
    net.eval()
    cross_entropy = correct = value_se = value_sign = weight_sum = 0.0
    for start in range(0, len(examples), batch_size):
        rows = slice(start, start + batch_size)
        out = net(torch.from_numpy(examples.planes[rows].astype(np.float32)))
        target = torch.from_numpy(examples.policy[rows])
        weight = torch.from_numpy(examples.policy_weight[rows])
        log_p = torch.log_softmax(out["policy"], dim=1)
        cross_entropy += float((-(target * log_p).sum(1) * weight).sum())
        correct += float(((out["policy"].argmax(1) == target.argmax(1)).float() * weight).sum())
        weight_sum += float(weight.sum())
        value = torch.from_numpy(examples.value[rows])
        value_se += float(((out["value"] - value) ** 2).sum())
        value_sign += float(((out["value"] * value) > 0).float().sum())
    n, w = len(examples), max(weight_sum, 1.0)
    return {"policy_loss": cross_entropy / w, "policy_top1": correct / w, "value_mse": value_se / n,
            "value_sign_accuracy": value_sign / n, "positions": float(n)}


@contextlib.contextmanager
def _no_pool():
    yield None
