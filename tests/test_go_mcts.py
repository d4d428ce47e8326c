"""MCTS: finds a capture and an atari escape, batches leaves, reuses its tree, samples by temperature."""

from __future__ import annotations

import numpy as np
import pytest

from mlcasebook.go.board import BLACK, WHITE, GoState, vertex_to_action
from mlcasebook.go.mcts import MCTS, MCTSConfig, RolloutEvaluator, SearchResult, sample_action, temperature_schedule
from mlcasebook.go.players import MctsPlayer

CAPTURE = """
    . . . . . . .
    . X X X X X .
    X O O O O O .
    . X X X X X .
    . . . . . . .
    . . . . . . .
    . . . . . . ."""

ESCAPE = """
    . . . . .
    . O O . X
    O X X . X
    . O O . X
    . . . . ."""


class MaterialEvaluator:
    """Uniform priors; value = tanh of the stone difference for the side to move. It knows nothing
    about atari, so only the search can see that a move loses or wins a group a ply later."""

    def evaluate(self, states):
        priors = np.full((len(states), states[0].num_actions), 1.0 / states[0].num_actions)
        values = []
        for state in states:
            stones = state.stones()
            own, other = (stones == state.to_play).sum(), (stones == 3 - state.to_play).sum()
            values.append(np.tanh(0.3 * (own - other)))
        return priors, np.array(values)


class CountingEvaluator(RolloutEvaluator):
    """Rollouts, recording the batch sizes the search asks for."""

    def __init__(self, seed: int = 0):
        super().__init__(seed=seed)
        self.batches: list[int] = []

    def evaluate(self, states):
        self.batches.append(len(states))
        return super().evaluate(states)


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize(("diagram", "answer"), [(CAPTURE, "G5"), (ESCAPE, "D3")])
def test_search_finds_the_capture_and_the_escape(diagram, answer, noise):
    """The evaluator only counts stones; seeing that every other move loses the group takes search.
    It must hold with self-play's root noise as well."""
    state = GoState.from_diagram(diagram, to_play=BLACK, komi=0.5)
    search = MCTS(MaterialEvaluator(), MCTSConfig(batch_size=4), seed=7)
    result = search.search(state, simulations=600, noise=noise)
    assert result.action == vertex_to_action(answer, state.size), result.visits
    assert result.best_value > 0  # black expects to win after it


def test_leaves_are_evaluated_in_batches_and_visits_add_up():
    evaluator = CountingEvaluator()
    search = MCTS(evaluator, MCTSConfig(batch_size=8))
    result = search.search(GoState(5), simulations=64)
    assert max(evaluator.batches) > 1
    assert sum(result.visits.values()) == result.simulations >= 64
    # virtual losses are all removed: every edge's visits are whole real visits
    root = search.root
    assert np.allclose(root.visits, np.round(root.visits)) and root.visits.sum() == result.simulations


def test_tree_is_reused_after_a_move():
    state = GoState(5)
    search = MCTS(RolloutEvaluator(), MCTSConfig(batch_size=4))
    first = search.search(state, simulations=120)
    best = first.action
    kept = int(first.visits[best])
    state.play(best)
    reused = search._reuse_root(state)
    assert reused is not None and reused.total_visits() >= kept - 1
    second = search.search(state, simulations=10)
    assert sum(second.visits.values()) >= kept - 1 + 10 - 1
    # an unrelated position starts a fresh tree
    other = GoState(5)
    other.play(0)
    other.play(24)
    assert search._reuse_root(other) is None


def test_temperature_sampling_and_schedule():
    result = SearchResult(action=3, visits={3: 90, 7: 10}, root_value=0, best_value=0, simulations=100, seconds=0)
    rng = np.random.default_rng(0)
    assert all(sample_action(result, 0.0, rng) == 3 for _ in range(20))
    picks = [sample_action(result, 1.0, rng) for _ in range(2000)]
    assert 0.05 < picks.count(7) / len(picks) < 0.15
    assert temperature_schedule(0, 9) == 1.0 and temperature_schedule(50, 9) == 0.0


def test_dirichlet_noise_changes_root_priors_only_with_noise():
    state = GoState(5)
    search = MCTS(RolloutEvaluator(), MCTSConfig(batch_size=2), seed=3)
    search.search(state, simulations=4, noise=True)
    noisy = search.root.prior.copy()
    assert not np.allclose(noisy, search.root.clean_prior)
    assert np.isclose(noisy.sum(), 1.0)


def test_player_resigns_a_hopeless_position():
    # black has one stone, white owns the board; black to move late in the game
    diagram = "\n".join(["O O O O O", "O . O . O", "O O O O O", "O . O . O", "O O O O X"])
    state = GoState.from_diagram(diagram, to_play=BLACK, komi=7)
    player = MctsPlayer(RolloutEvaluator(), simulations=40, resign_threshold=0.9, min_resign_move=0)
    assert player.choose(state, None) == -1


def test_temperature_draws_never_pick_pass_when_told_not_to():
    result = SearchResult(action=25, visits={25: 50, 3: 1, 4: 1}, root_value=0, best_value=0, simulations=52,
                          seconds=0)
    rng = np.random.default_rng(1)
    assert {sample_action(result, 1.0, rng, pass_action=25) for _ in range(50)} <= {3, 4}
    assert sample_action(result, 0.0, rng, pass_action=25) == 25  # the best move may still be pass


def test_root_pass_can_be_excluded():
    state = GoState(5)
    state.play(12)
    result = MCTS(RolloutEvaluator(), MCTSConfig(batch_size=4)).search(state, simulations=60, allow_pass=False)
    assert state.pass_action not in result.visits


def test_forced_playouts_explore_the_noise_and_pruning_takes_them_back():
    state = GoState(5)
    config = MCTSConfig(batch_size=1, forced_playouts_k=2.0, dirichlet_fraction=0.5)
    search = MCTS(MaterialEvaluator(), config, seed=4)
    result = search.search(state, simulations=200, noise=True)
    root = search.root
    forced = np.sqrt(2.0 * root.prior * root.total_visits())
    # every child the noise favoured got its forced share (up to the last few simulations)
    assert np.all(root.visits >= np.floor(forced) - 1)
    target = result.policy_target
    assert target is not None and set(target) <= set(result.visits)
    assert all(target[a] <= result.visits[a] for a in target)
    assert target[result.action] == result.visits[result.action]  # the best move keeps all its visits
    assert sum(target.values()) < sum(result.visits.values())
    # without noise there is no forcing and no pruned target
    assert MCTS(MaterialEvaluator(), config).search(state, simulations=20).policy_target is None


def test_a_lost_terminal_tried_first_does_not_trap_the_search():
    """White passed; Black's pass would end the game lost on komi. Even if the pass is tried
    first (highest prior), the other moves must still be explored and preferred."""

    class PassFirst(MaterialEvaluator):
        def evaluate(self, states):
            priors, values = super().evaluate(states)
            priors[:, -1] = 0.5  # the network 'likes' pass
            return priors / priors.sum(1, keepdims=True), values * 0

    state = GoState.from_diagram("""
        . . . . .
        . . . . .
        . . X . .
        . . . O .
        . . . . .""", to_play=WHITE, komi=7)
    state.play(state.pass_action)  # white passes: black to move, a black pass now loses on komi
    assert state.clone().score() < 0
    result = MCTS(PassFirst(), MCTSConfig(batch_size=1)).search(state, simulations=50)
    assert result.action != state.pass_action and result.best_value > -0.5


def test_searching_several_games_together_batches_across_trees():
    from mlcasebook.go.mcts import search_together

    evaluator = CountingEvaluator()
    states = [GoState(5), GoState(5), GoState(5)]
    states[1].play(12)
    searches = [MCTS(evaluator, MCTSConfig(batch_size=4), seed=i) for i in range(3)]
    results = search_together(searches, states, [40, 20, 8], [False, True, False], [True, True, False])
    assert [r.simulations for r in results] == [40, 20, 8]
    assert [sum(r.visits.values()) for r in results] == [40, 20, 8]
    assert max(evaluator.batches) > 4  # leaves of several trees in one call
    assert states[2].pass_action not in results[2].visits
    # the trees are kept for reuse, one per game
    assert all(search.root is not None for search in searches)
