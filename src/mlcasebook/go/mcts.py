"""Monte Carlo tree search with PUCT (AlphaGo Zero), batched leaf evaluation and tree reuse.

The search takes a pluggable evaluator (OpenSpiel's design): anything with
``evaluate(states) -> (priors[B, A], values[B])`` where ``values`` are from the side to move's
point of view in [-1, 1]. A neural network evaluator (``net.NetEvaluator``) and a classic
random-rollout evaluator (below) both fit.

Batching: a simulation descends the tree adding a *virtual loss* to every edge it takes, so the
next descent in the same batch prefers other paths; the leaves of ``batch_size`` descents go to
the evaluator in one call (one forward pass of the network), then the virtual losses are replaced
by the real values. Tree reuse: after a move, the subtree under it becomes the new root, so the
search keeps what it already learned about the position.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .board import EMPTY, GoState, random_playout


class Evaluator(Protocol):
    def evaluate(self, states: list[GoState]) -> tuple[np.ndarray, np.ndarray]:
        ...


def terminal_value(state: GoState) -> float:
    """+1 / -1 / 0 for the side to move of a finished game."""
    winner = state.winner()
    return 0.0 if winner == EMPTY else (1.0 if winner == state.to_play else -1.0)


class RolloutEvaluator:
    """Uniform priors over all actions; value = outcome of random playouts (classic MCTS).

    Needs no training, so the engine plays (weakly) before any network exists, and tests and
    benchmarks have a deterministic, cheap stand-in for the network.
    """

    def __init__(self, rollouts: int = 1, seed: int = 0):
        self.rollouts = rollouts
        self.rng = random.Random(seed)

    def evaluate(self, states: list[GoState]) -> tuple[np.ndarray, np.ndarray]:
        priors = np.full((len(states), states[0].num_actions), 1.0 / states[0].num_actions, dtype=np.float32)
        values = np.zeros(len(states), dtype=np.float32)
        for i, state in enumerate(states):
            total = 0.0
            for _ in range(self.rollouts):
                finished = random_playout(state.clone(), self.rng)
                winner = finished.winner()
                total += 0.0 if winner == EMPTY else (1.0 if winner == state.to_play else -1.0)
            values[i] = total / self.rollouts
        return priors, values


class Node:
    """One position in the tree; edge statistics live in the parent, in arrays over legal actions."""

    __slots__ = ("actions", "prior", "clean_prior", "visits", "value_sum", "children", "terminal", "value")

    def __init__(self, actions: np.ndarray, prior: np.ndarray, value: float, terminal: bool = False):
        self.actions = actions  # legal actions here
        self.prior = prior.astype(np.float64)
        self.clean_prior = self.prior  # before root noise, so a reused root is not noised twice
        self.visits = np.zeros(len(actions))
        self.value_sum = np.zeros(len(actions))  # from this node's side to move
        self.children: list[Node | None] = [None] * len(actions)
        self.terminal = terminal
        self.value = value  # the evaluator's (or the rules') value of this node, side to move

    def total_visits(self) -> float:
        return float(self.visits.sum())

    def q_values(self, unvisited: float) -> np.ndarray:
        q = np.full(len(self.actions), unvisited)
        seen = self.visits > 0
        q[seen] = self.value_sum[seen] / self.visits[seen]
        return q


@dataclass
class SearchResult:
    action: int  # chosen action
    visits: dict[int, int]  # action -> visit count at the root (the policy target)
    root_value: float  # mean value at the root, side to move
    best_value: float  # Q of the most visited action
    simulations: int
    seconds: float
    evaluations: int = 0  # leaves sent to the evaluator (simulations that ended in a finished game need none)
    policy_target: dict[int, float] | None = None  # visits after KataGo's pruning (when forced playouts ran)


@dataclass
class MCTSConfig:
    c_puct: float = 1.5
    batch_size: int = 8
    virtual_loss: float = 1.0
    dirichlet_alpha: float | None = None  # None: 0.03·361/N² (AlphaGo Zero's 0.03 scaled to the board)
    dirichlet_fraction: float = 0.25
    first_play_urgency: float = 0.2  # unvisited children start at parent value minus this (KataGo/Leela FPU)
    max_depth: int = 400
    # KataGo's forced playouts: with noise at the root, child c gets at least sqrt(k·P(c)·N) visits,
    # so the noise actually gets explored; the policy target then prunes those extra visits.
    forced_playouts_k: float = 0.0


class MCTS:
    """PUCT search over ``GoState`` with a pluggable evaluator."""

    def __init__(self, evaluator: Evaluator, config: MCTSConfig | None = None, seed: int = 0):
        self.evaluator = evaluator
        self.config = config or MCTSConfig()
        self.rng = np.random.default_rng(seed)
        self.root: Node | None = None
        self.root_history: tuple[int, ...] | None = None
        self.root_hash: int | None = None
        self.evaluations = 0
        self._root_without_pass: Node | None = None
        self._forced_root: Node | None = None

    # ---------------------------------------------------------------- tree reuse
    def _reuse_root(self, state: GoState) -> Node | None:
        """The subtree for ``state`` if it continues the previous root's game, else None."""
        if self.root is None or self.root_history is None:
            return None
        history = tuple(m.action for m in state.moves)
        old = self.root_history
        if history[: len(old)] != old:
            return None
        node: Node | None = self.root
        for action in history[len(old):]:
            if node is None:
                return None
            where = np.flatnonzero(node.actions == action)
            node = node.children[int(where[0])] if len(where) else None
        return node

    def _remember_root(self, node: Node, state: GoState) -> None:
        self.root, self.root_history, self.root_hash = node, tuple(m.action for m in state.moves), state.hash

    def reset(self) -> None:
        self.root = self.root_history = self.root_hash = None

    # ---------------------------------------------------------------- search
    def _expand(self, state: GoState, prior_row: np.ndarray, value: float) -> Node:
        mask = state.legal_mask()
        actions = np.flatnonzero(mask)
        prior = prior_row[actions].astype(np.float64)
        total = prior.sum()
        prior = prior / total if total > 0 else np.full(len(actions), 1.0 / len(actions))
        return Node(actions, prior, float(value))

    def _select(self, node: Node) -> int:
        cfg = self.config
        total = node.total_visits()
        # first-play urgency: unvisited moves start a little below the network's value of the
        # parent (Leela Zero), not at 0 and not at the running average: if the first child tried
        # is a lost terminal (a pass that ends the game), the running average drops to -1 and
        # every unvisited move would look worse than that loss (measured: it made self-play resign)
        q = node.q_values(node.value - cfg.first_play_urgency)
        u = cfg.c_puct * node.prior * math.sqrt(total + 1) / (1.0 + node.visits)
        scores = q + u
        if node is self._root_without_pass:
            scores[-1] = -np.inf  # pass is the last legal action
        if node is self._forced_root:
            starved = node.visits < np.sqrt(cfg.forced_playouts_k * node.prior * total)
            starved &= np.isfinite(scores)
            if starved.any():
                return int(np.argmax(np.where(starved, scores, -np.inf)))
        return int(np.argmax(scores))

    def _pruned_policy_target(self, root: Node) -> dict[int, float]:
        """KataGo's policy target pruning: take back forced visits from every child that would not
        have earned them under PUCT (its score stays below the best child's), drop single visits."""
        cfg = self.config
        total = root.total_visits()
        sqrt_total = math.sqrt(total)
        best = int(np.argmax(root.visits))
        q = root.value_sum / np.maximum(root.visits, 1)
        best_score = q[best] + cfg.c_puct * root.prior[best] * sqrt_total / (1 + root.visits[best])
        target: dict[int, float] = {}
        for i, (action, visits) in enumerate(zip(root.actions, root.visits, strict=True)):
            if visits <= 0:
                continue
            if i != best:
                forced = math.sqrt(cfg.forced_playouts_k * root.prior[i] * total)
                gap = best_score - q[i]
                # fewest visits that keep this child's PUCT score below the best one's
                needed = cfg.c_puct * root.prior[i] * sqrt_total / gap - 1 if gap > 0 else visits
                visits = max(visits - forced, math.ceil(needed), 0)
                visits = min(visits, root.visits[i])
                if visits <= 1:
                    continue
            target[int(action)] = float(visits)
        return target

    def search(self, state: GoState, simulations: int | None = None, seconds: float | None = None,
               noise: bool = False, allow_pass: bool = True) -> SearchResult:
        """Run simulations from ``state`` (by count, by time, or both: whichever ends first).

        ``allow_pass=False`` keeps pass out of the root's choices (self-play openings: a pass
        there only lets the opponent end the game with komi, which teaches nothing)."""
        if state.is_over():
            raise ValueError("cannot search a finished game")
        if simulations is None and seconds is None:
            simulations = 200
        started = time.perf_counter()
        self.evaluations = 0
        root = self._reuse_root(state)
        if root is None or root.terminal:
            priors, values = self.evaluator.evaluate([state])
            self.evaluations += 1
            root = self._expand(state, priors[0], float(values[0]))
        self._setup_root(root, state, noise, allow_pass)
        done = 0
        while True:
            if simulations is not None and done >= simulations:
                break
            if seconds is not None and done > 0 and time.perf_counter() - started >= seconds:
                break
            batch = self.config.batch_size if simulations is None else min(self.config.batch_size,
                                                                             simulations - done)
            pending, finished = self._collect(root, state, max(1, batch))
            if pending:
                priors, values = self.evaluator.evaluate([leaf_state for _, leaf_state in pending])
                finished += self._apply(pending, priors, values)
            done += max(finished, 1)
        return self._result(root, state, done, started)

    def _setup_root(self, root: Node, state: GoState, noise: bool, allow_pass: bool) -> None:
        cfg = self.config
        can_skip_pass = len(root.actions) > 1 and root.actions[-1] == state.pass_action
        self._root_without_pass = root if not allow_pass and can_skip_pass else None
        self._forced_root = root if noise and cfg.forced_playouts_k > 0 else None
        if noise:
            alpha = cfg.dirichlet_alpha or 0.03 * 361 / (state.size * state.size)
            noise_sample = self.rng.dirichlet([alpha] * len(root.actions))
            root.prior = (1 - cfg.dirichlet_fraction) * root.clean_prior + cfg.dirichlet_fraction * noise_sample

    def _result(self, root: Node, state: GoState, done: int, started: float) -> SearchResult:
        self._remember_root(root, state)
        excluded_pass = self._root_without_pass is root
        self._root_without_pass = None
        policy_target = self._pruned_policy_target(root) if self._forced_root is not None else None
        self._forced_root = None
        visits = root.visits.copy()
        if excluded_pass:
            visits[-1] = 0  # a reused root may hold pass visits from when it was an inner node
            if policy_target is not None:
                policy_target.pop(state.pass_action, None)
        best = int(np.argmax(visits))
        total = root.total_visits()
        return SearchResult(
            action=int(root.actions[best]),
            visits={int(a): int(n) for a, n in zip(root.actions, visits, strict=True) if n > 0},
            root_value=float(root.value_sum.sum() / total) if total else root.value,
            best_value=float(root.value_sum[best] / root.visits[best]) if root.visits[best] else root.value,
            simulations=done,
            seconds=time.perf_counter() - started,
            evaluations=self.evaluations,
            policy_target=policy_target,
        )

    def _collect(self, root: Node, root_state: GoState, batch: int) -> tuple[list, int]:
        """Descend ``batch`` times with virtual loss: the new leaves to evaluate, and how many
        descents already ended (in a finished game) and were backed up."""
        cfg = self.config
        pending: list[tuple[list[tuple[Node, int]], GoState]] = []
        claimed: set[tuple[int, int]] = set()  # (id(parent), index) of leaves already in this batch
        finished = 0
        for _ in range(batch):
            node, state, path = root, root_state.clone(), []
            leaf_value: float | None = None
            while True:
                index = self._select(node)
                path.append((node, index))
                node.visits[index] += cfg.virtual_loss
                node.value_sum[index] -= cfg.virtual_loss
                state.play(int(node.actions[index]))
                child = node.children[index]
                if state.is_over():
                    leaf_value = terminal_value(state)
                    if child is None:
                        node.children[index] = Node(np.empty(0, dtype=np.int64), np.empty(0), leaf_value, True)
                    break
                if child is None or len(path) >= cfg.max_depth:
                    break
                node = child
            if leaf_value is not None:
                self._backup(path, leaf_value)
                finished += 1
                continue
            key = (id(path[-1][0]), path[-1][1])
            if key in claimed:  # another descent of this batch already waits on this leaf
                self._backup(path, None)
                continue
            claimed.add(key)
            pending.append((path, state))
        return pending, finished

    def _apply(self, pending: list, priors: np.ndarray, values: np.ndarray) -> int:
        """Expand the evaluated leaves and back their values up; returns how many."""
        self.evaluations += len(pending)
        for (path, state), prior_row, value in zip(pending, priors, values, strict=True):
            parent, index = path[-1]
            if parent.children[index] is None:
                parent.children[index] = self._expand(state, prior_row, float(value))
            self._backup(path, float(value))
        return len(pending)

    def _backup(self, path: list[tuple[Node, int]], leaf_value: float | None) -> None:
        """Replace the virtual losses on ``path`` by the leaf value (or just remove them if None).

        ``leaf_value`` is from the leaf's side to move; each edge stores the value for the side
        that chose it (the parent's side to move), so the sign flips at every ply upwards.
        """
        cfg = self.config
        value = None if leaf_value is None else -leaf_value
        for node, index in reversed(path):
            node.visits[index] -= cfg.virtual_loss
            node.value_sum[index] += cfg.virtual_loss
            if value is not None:
                node.visits[index] += 1
                node.value_sum[index] += value
                value = -value


def search_together(searches: list[MCTS], states: list[GoState], simulations: list[int], noise: list[bool],
                    allow_pass: list[bool]) -> list[SearchResult]:
    """Search several games at once (one MCTS each, sharing one evaluator): every round collects
    leaves from all trees and evaluates them in a single call, so the network sees batches of
    ``games x batch_size`` positions — larger batches with less virtual-loss distortion per tree."""
    evaluator = searches[0].evaluator
    started = time.perf_counter()
    roots: list[Node | None] = []
    for search, state in zip(searches, states, strict=True):
        search.evaluations = 0
        root = search._reuse_root(state)
        roots.append(None if root is None or root.terminal else root)
    missing = [i for i, root in enumerate(roots) if root is None]
    if missing:
        priors, values = evaluator.evaluate([states[i] for i in missing])
        for i, prior_row, value in zip(missing, priors, values, strict=True):
            searches[i].evaluations += 1
            roots[i] = searches[i]._expand(states[i], prior_row, float(value))
    for i, search in enumerate(searches):
        search._setup_root(roots[i], states[i], noise[i], allow_pass[i])
    done = [0] * len(searches)
    while True:
        active = [i for i in range(len(searches)) if done[i] < simulations[i]]
        if not active:
            break
        collected = []
        for i in active:
            batch = min(searches[i].config.batch_size, simulations[i] - done[i])
            pending, finished = searches[i]._collect(roots[i], states[i], batch)
            done[i] += finished
            collected.append((i, pending, finished))
        leaves = [leaf_state for _, pending, _ in collected for _, leaf_state in pending]
        if leaves:
            priors, values = evaluator.evaluate(leaves)
        offset = 0
        for i, pending, finished in collected:
            applied = searches[i]._apply(pending, priors[offset:offset + len(pending)],
                                         values[offset:offset + len(pending)]) if pending else 0
            offset += len(pending)
            done[i] += applied if applied or finished else 1  # always progress (all descents collided)
    return [search._result(roots[i], states[i], done[i], started)
            for i, search in enumerate(searches)]


def sample_action(result: SearchResult, temperature: float, rng: np.random.Generator,
                  pass_action: int | None = None) -> int:
    """The move to play: most visited at temperature 0, else sampled from visits^(1/T).

    With ``pass_action`` given, a temperature draw never picks pass (unless nothing else was
    visited): a pass drawn by chance in the opening lets the opponent end the game at once with
    komi, and such two-move games teach the network nothing."""
    actions = np.array(list(result.visits))
    visits = np.array(list(result.visits.values()), dtype=np.float64)
    if temperature <= 1e-6 or len(actions) == 1:
        return int(actions[np.argmax(visits)])
    if pass_action is not None and (actions != pass_action).any():
        keep = actions != pass_action
        actions, visits = actions[keep], visits[keep]
    weights = visits ** (1.0 / temperature)
    return int(rng.choice(actions, p=weights / weights.sum()))


def temperature_schedule(move_number: int, size: int, opening_moves: int | None = None) -> float:
    """AlphaGo Zero: T = 1 for the opening (diverse games), then play the best move.
    The opening length scales with the board (30 moves on 19x19 -> about 7 on 9x9)."""
    opening = opening_moves if opening_moves is not None else max(2, round(30 * size * size / 361))
    return 1.0 if move_number < opening else 0.0
