"""Move choosers behind the GTP engine: a random player and the MCTS player (net or rollouts)."""

from __future__ import annotations

import random

import numpy as np

from .board import GoState
from .gtp import RESIGN
from .mcts import MCTS, Evaluator, MCTSConfig, SearchResult


class RandomPlayer:
    """Uniformly random legal move that does not fill its own eye; passes when none is left."""

    def __init__(self, seed: int | None = None):
        self.rng = random.Random(seed)

    def choose(self, state: GoState, seconds: float | None) -> int:
        actions = [a for a in state.legal_actions()
                   if a != state.pass_action and not state.is_own_eye(a, state.to_play)]
        return self.rng.choice(actions) if actions else state.pass_action


class MctsPlayer:
    """PUCT search with tree reuse; resigns when the best move's value is hopeless.

    ``simulations`` and ``seconds`` both bound the search (whichever ends first); the GTP engine
    passes the clock's budget as ``seconds``.
    """

    def __init__(self, evaluator: Evaluator, simulations: int | None = 400, seconds: float | None = None,
                 resign_threshold: float = 0.95, min_resign_move: int = 20, config: MCTSConfig | None = None,
                 seed: int = 0):
        self.search = MCTS(evaluator, config, seed)
        self.simulations = simulations
        self.seconds = seconds
        self.resign_threshold = resign_threshold
        self.min_resign_move = min_resign_move
        self.last: SearchResult | None = None
        self.rng = np.random.default_rng(seed)

    def choose(self, state: GoState, seconds: float | None) -> int:
        budget = seconds if seconds is not None else self.seconds
        self.last = self.search.search(state, simulations=self.simulations, seconds=budget)
        if (self.resign_threshold < 1.0 and state.move_number >= self.min_resign_move
                and self.last.best_value < -self.resign_threshold):
            return RESIGN
        return self.last.action


def play_players(black, white, size: int = 9, komi: float = 7.0, max_moves: int | None = None,
                 opening_moves: int = 0, seed: int = 0) -> GoState:
    """A game between two in-process players (no pipes), refereed by our rules.

    ``opening_moves`` random moves first, so that repeated games between deterministic players
    differ. A player's RESIGN ends the game."""
    state = GoState(size, komi)
    opener = RandomPlayer(seed)
    for _ in range(opening_moves):
        state.play(opener.choose(state, None))
    players = {1: black, 2: white}
    cap = max_moves or 3 * size * size
    while not state.is_over() and state.move_number < cap:
        action = players[state.to_play].choose(state.clone(), None)
        if action == RESIGN:
            state.resign()
            break
        state.play(action)
    return state


class PolicyPlayer:
    """The raw policy network, no search: the most probable legal move (AlphaGo's 'SL policy')."""

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator

    def choose(self, state: GoState, seconds: float | None) -> int:
        priors, _ = self.evaluator.evaluate([state])
        return int(np.argmax(priors[0]))
