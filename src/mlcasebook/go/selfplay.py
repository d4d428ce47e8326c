"""Self-play games and the training examples they yield (AlphaGo Zero, with KataGo's savings).

Each move is searched with MCTS; the visit distribution becomes the policy target, the game's
outcome the value target, the final Tromp-Taylor ownership and score the auxiliary targets.

KataGo's *playout cap randomisation*: only a fraction of moves get a full search (with root
noise) and are recorded as policy targets; the others get a fast search without noise, which
moves the game along cheaply, and still give value / ownership / score targets. Resignation is
disabled in a fraction of games, and in those we record whether the side that *would* have
resigned went on to win: that is the measured false-resign rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .board import BLACK, EMPTY, GoState
from .mcts import MCTS, Evaluator, MCTSConfig, sample_action, search_together, temperature_schedule
from .net import encode


@dataclass(frozen=True)
class SelfPlayConfig:
    size: int = 9
    komi: float = 7.0
    full_simulations: int = 200
    fast_simulations: int = 40
    full_search_probability: float = 0.25  # KataGo: 1 move in 4 gets the full search and a policy target
    resign_threshold: float = 0.9
    # no resignation in the first half of a game's usual length (N²/2 moves): a weak net's values
    # are least reliable early, and a game resigned later still teaches its first N²/2 moves
    min_resign_fraction: float = 0.5
    resign_consecutive: int = 3  # the side's value must stay below the threshold this many own moves
    no_resign_fraction: float = 0.1  # games played out to measure the false-resign rate
    # False: every game is played out (and measures the false-resign rate); the trainer turns
    # resignation on only once that rate is measured low (see train.resignation_allowed)
    resign_enabled: bool = True
    max_moves_factor: int = 3  # games are cut at factor·N² moves (never reached in practice)
    batch_size: int = 8
    history: int = 4
    liberties: bool = True  # must match the network's NetConfig
    forced_playouts_k: float = 2.0  # KataGo's value; 0 turns forced playouts and target pruning off
    # no pass at the root before this fraction of N² moves: an untrained net passes at random,
    # the opponent passes back and komi decides a 9-move game (measured), which teaches nothing
    no_pass_before: float = 0.5
    parallel_games: int = 8  # games a worker plays in lockstep, so the network sees bigger batches


@dataclass
class Examples:
    """Training examples as compact arrays (binary planes as uint8)."""

    planes: np.ndarray  # [P, C, N, N] uint8
    policy: np.ndarray  # [P, N²+1] float32 visit distribution
    policy_weight: np.ndarray  # [P] float32: 1 for full searches, 0 for fast ones
    value: np.ndarray  # [P] float32, side to move's outcome
    ownership: np.ndarray  # [P, N, N] int8, side to move's view
    score: np.ndarray  # [P] float32, side to move's final margin / N²

    @staticmethod
    def concat(parts: list[Examples]) -> Examples:
        return Examples(*(np.concatenate([getattr(p, name) for p in parts]) for name in Examples.fields()))

    @staticmethod
    def fields() -> tuple[str, ...]:
        return ("planes", "policy", "policy_weight", "value", "ownership", "score")

    def __len__(self) -> int:
        return len(self.value)


@dataclass
class GameInfo:
    moves: int
    result: str
    resigned: bool
    resign_disabled: bool
    would_resign: int | None = None  # colour that would have resigned (in a no-resign game)
    would_resign_move: int | None = None
    false_resign: bool = False  # ... and won all the same
    # a played-out game where resigning would have cut at least N²/4 moves: a check of the
    # resignation rule (near the end the search sees the final score, so a would-resign there is
    # always right and says nothing about the early resignations that matter)
    resign_check: bool = False
    full_searches: int = 0
    actions: list[int] = field(default_factory=list)


@dataclass
class _Game:
    """One self-play game in progress."""

    state: GoState
    search: MCTS
    info: GameInfo
    positions: list = field(default_factory=list)  # (planes, policy, weight, colour)
    full: bool = False
    temperature: float = 1.0
    hopeless: dict = field(default_factory=lambda: {1: 0, 2: 0})  # consecutive own moves below the threshold


def play_game(evaluator: Evaluator, config: SelfPlayConfig, rng: np.random.Generator) -> tuple[Examples, GameInfo]:
    return play_games(evaluator, config, 1, rng)[0]


def play_games(evaluator: Evaluator, config: SelfPlayConfig, games: int,
               rng: np.random.Generator) -> list[tuple[Examples, GameInfo]]:
    """``games`` self-play games played in lockstep: each move of every unfinished game is searched
    together (``search_together``), so the network evaluates leaves of all games in one batch."""
    mcts_config = MCTSConfig(batch_size=config.batch_size, forced_playouts_k=config.forced_playouts_k)
    running = [_Game(GoState(config.size, config.komi), MCTS(evaluator, mcts_config, seed=int(rng.integers(2**31))),
                     GameInfo(0, "", False, rng.random() < config.no_resign_fraction or not config.resign_enabled))
               for _ in range(games)]
    every = list(running)
    cap = config.max_moves_factor * config.size * config.size
    while running:
        allow_pass = []
        for game in running:
            game.full = rng.random() < config.full_search_probability
            game.temperature = temperature_schedule(game.state.move_number, config.size)
            allow_pass.append(game.temperature == 0
                              and game.state.move_number >= config.no_pass_before * config.size ** 2)
        results = search_together(
            [g.search for g in running], [g.state for g in running],
            [config.full_simulations if g.full else config.fast_simulations for g in running],
            [g.full for g in running], allow_pass)
        for game, result in zip(running, results, strict=True):
            _advance(game, result, config, rng)
        running = [g for g in running if not g.state.is_over() and g.state.move_number < cap]
    return [(_examples(game, config), game.info) for game in every]


def _advance(game: _Game, result, config: SelfPlayConfig, rng: np.random.Generator) -> None:
    """Record the searched position and play the chosen move (or resign)."""
    state, info = game.state, game.info
    low = result.best_value < -config.resign_threshold
    game.hopeless[state.to_play] = game.hopeless[state.to_play] + 1 if low else 0
    if (game.hopeless[state.to_play] >= config.resign_consecutive
            and state.move_number >= config.min_resign_fraction * config.size ** 2):
        if not info.resign_disabled:
            state.resign()
            info.resigned = True
            return
        if info.would_resign is None:
            info.would_resign, info.would_resign_move = state.to_play, state.move_number
    policy = np.zeros(state.num_actions, dtype=np.float32)
    for action, visits in (result.policy_target or result.visits).items():
        policy[action] = visits
    policy /= max(policy.sum(), 1.0)
    planes = encode([state], config.history, config.liberties)[0].astype(np.uint8)
    game.positions.append((planes, policy, float(game.full), state.to_play))
    info.full_searches += int(game.full)
    action = sample_action(result, game.temperature, rng, pass_action=state.pass_action)
    info.actions.append(action)
    state.play(action)


def _examples(game: _Game, config: SelfPlayConfig) -> Examples:
    state, info, positions = game.state, game.info, game.positions
    info.moves, info.result = state.move_number, state.result_string()
    winner = state.winner()
    if info.would_resign is not None:
        info.false_resign = winner == info.would_resign
        info.resign_check = info.moves - info.would_resign_move >= config.size ** 2 / 4
    owner = state.area_owner()  # Tromp-Taylor, Black positive
    margin = state.score() / (config.size * config.size) if state.resigned is None else \
        (1.0 if winner == BLACK else -1.0) * 0.5  # a resigned game: the margin is unknown, call it large
    return Examples(
        planes=np.stack([p[0] for p in positions]),
        policy=np.stack([p[1] for p in positions]),
        policy_weight=np.array([p[2] for p in positions], dtype=np.float32),
        value=np.array([0.0 if winner == EMPTY else (1.0 if winner == p[3] else -1.0) for p in positions],
                       dtype=np.float32),
        ownership=np.stack([owner if p[3] == BLACK else -owner for p in positions]).astype(np.int8),
        score=np.array([margin if p[3] == BLACK else -margin for p in positions], dtype=np.float32),
    )
