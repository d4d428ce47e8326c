"""Go rules: any board from 5x5 to 19x19, Tromp-Taylor area scoring, positional superko, no suicide.

Why our own rules and not open_spiel's C++ Go: open_spiel checks only simple ko when it lists
legal moves and ends a game that repeats a position as a *draw*; it also stops every game at
``max_game_length`` (2·N² moves). The case needs strict positional superko (the repeating move is
illegal, as Tromp-Taylor says), suicide illegal and games that end only by two passes or
resignation. ``benchmarks/go_rules_speed.py`` measures both side by side.

Representation, chosen for speed in pure Python (measured, see docs/go.md):

- the board is a flat Python ``list`` with a one-point border (``EDGE``) so neighbours need no
  bounds checks; indexing a list is several times faster than indexing a numpy array per element;
- *copy-on-write*: a move never mutates the list it started from, it copies it (a 121-element
  copy costs less than bookkeeping), so ``clone`` shares the list and ``undo`` just restores the
  previous one;
- captures and suicide are found by a flood fill that stops at the first liberty; whole-board
  legality (``legal_mask``) labels every chain once and derives each point's legality from the
  chains' liberty counts;
- positional superko uses Zobrist hashes of the stones only (positional, not situational).

Actions are integers: ``row * size + col`` with row 0 at the top (as printed), and
``size * size`` is pass. GTP vertices ("D4", "pass") convert with ``vertex_to_action``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ..core.errors import CasebookError

EMPTY, BLACK, WHITE, EDGE = 0, 1, 2, 3
MIN_SIZE, MAX_SIZE = 5, 19
GTP_COLUMNS = "ABCDEFGHJKLMNOPQRST"  # GTP skips the letter I
COLOR_NAMES = {BLACK: "B", WHITE: "W"}


class IllegalMove(CasebookError):
    """A move the rules forbid (occupied point, suicide, superko, game over)."""


def opponent(color: int) -> int:
    return BLACK + WHITE - color


@dataclass(frozen=True)
class Geometry:
    """Everything that depends only on the board size, computed once per size and shared."""

    size: int
    stride: int
    points: tuple[int, ...]  # padded index of each action 0..size²-1
    action_of: tuple[int, ...]  # padded index -> action (-1 on the border)
    neighbours: tuple[tuple[int, ...], ...]  # padded index -> on-board neighbours (border points excluded)
    zobrist: tuple[tuple[int, ...], ...]  # [color][padded index] -> 64-bit key
    empty_board: tuple[int, ...]

    @property
    def pass_action(self) -> int:
        return self.size * self.size


_GEOMETRIES: dict[int, Geometry] = {}


def geometry(size: int) -> Geometry:
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise CasebookError(f"board size {size!r} is not supported", hint=f"use {MIN_SIZE} to {MAX_SIZE}")
    if size not in _GEOMETRIES:
        stride = size + 2
        cells = stride * stride
        board = [EDGE] * cells
        points = []
        action_of = [-1] * cells
        for row in range(size):
            for col in range(size):
                p = (row + 1) * stride + col + 1
                board[p] = EMPTY
                action_of[p] = len(points)
                points.append(p)
        neighbours = tuple(
            tuple(q for q in (p - stride, p - 1, p + 1, p + stride) if board[q] != EDGE) if board[p] != EDGE else ()
            for p in range(cells)
        )
        # fixed seed: hashes are reproducible across runs and processes (self-play workers agree)
        rng = np.random.default_rng(20261130 + size)
        keys = rng.integers(1, 2**63 - 1, size=(3, cells), dtype=np.int64)
        zobrist = tuple(tuple(int(k) for k in keys[c]) for c in range(3))
        _GEOMETRIES[size] = Geometry(size, stride, tuple(points), tuple(action_of), neighbours, zobrist, tuple(board))
    return _GEOMETRIES[size]


def vertex_to_action(vertex: str, size: int) -> int:
    """'D4' / 'pass' (any case) -> action; raises CasebookError on a malformed or off-board vertex."""
    text = vertex.strip().upper()
    if text == "PASS":
        return size * size
    if len(text) < 2 or text[0] not in GTP_COLUMNS or not text[1:].isdigit():
        raise CasebookError(f"invalid vertex {vertex!r}", hint="use a letter and a number such as D4, or pass")
    col = GTP_COLUMNS.index(text[0])
    number = int(text[1:])
    if col >= size or not 1 <= number <= size:
        raise CasebookError(f"vertex {vertex!r} is off a {size}x{size} board")
    return (size - number) * size + col


def action_to_vertex(action: int, size: int) -> str:
    if action == size * size:
        return "pass"
    row, col = divmod(action, size)
    return f"{GTP_COLUMNS[col]}{size - row}"


@dataclass(frozen=True)
class _Undo:
    """What one move changed, so ``undo`` restores it exactly."""

    action: int
    color: int
    board: list
    hash: int
    passes: int
    to_play: int
    new_position: bool  # the move created a position not seen before (its hash went into ``seen``)


class GoState:
    """A game of Go in progress. ``play`` validates; ``legal_mask`` lists every legal action."""

    def __init__(self, size: int = 9, komi: float = 7.0):
        self.geo = geometry(size)
        self.size = size
        self.komi = float(komi)
        self.board: list[int] = list(self.geo.empty_board)
        self.to_play = BLACK
        self.hash = 0
        self.seen: set[int] = {0}
        self.passes = 0  # consecutive passes; two end the game
        self.resigned: int | None = None  # colour that resigned
        self.moves: list[_Undo] = []
        self._legal_cache: tuple[int, np.ndarray] | None = None  # (colour, mask) of this exact state

    @classmethod
    def from_diagram(cls, diagram: str, to_play: int = BLACK, komi: float = 7.0) -> GoState:
        """A position from rows of ``X`` (black), ``O`` (white) and ``.``, top row first (tests, puzzles).

        Stones are placed, not played: nothing is captured, and the position starts the history.
        """
        rows = [line.split() if " " in line.strip() else list(line.strip())
                for line in diagram.strip().splitlines() if line.strip()]
        size = len(rows)
        if any(len(row) != size for row in rows):
            raise CasebookError("a diagram must be square", hint="one row per line, one of X O . per point")
        state = cls(size, komi)
        board = list(state.board)
        codes = {".": EMPTY, "X": BLACK, "O": WHITE}
        for row, cells in enumerate(rows):
            for col, cell in enumerate(cells):
                if cell not in codes:
                    raise CasebookError(f"unknown diagram symbol {cell!r}", hint="use X, O or .")
                p = state.geo.points[row * size + col]
                board[p] = codes[cell]
                if codes[cell] != EMPTY:
                    state.hash ^= state.geo.zobrist[codes[cell]][p]
        state.board, state.seen, state.to_play = board, {state.hash}, to_play
        return state

    # ------------------------------------------------------------------ basics
    @property
    def num_actions(self) -> int:
        return self.size * self.size + 1

    @property
    def pass_action(self) -> int:
        return self.size * self.size

    @property
    def move_number(self) -> int:
        return len(self.moves)

    def is_over(self) -> bool:
        return self.passes >= 2 or self.resigned is not None

    def clone(self) -> GoState:
        """An independent copy. Boards are copy-on-write, so only the containers are copied."""
        other = GoState.__new__(GoState)
        other.geo, other.size, other.komi = self.geo, self.size, self.komi
        other.board, other.to_play, other.hash = self.board, self.to_play, self.hash
        other.seen = set(self.seen)
        other.passes, other.resigned = self.passes, self.resigned
        other.moves = list(self.moves)
        other._legal_cache = self._legal_cache  # read-only array, same position and history
        return other

    def color_at(self, action: int) -> int:
        return self.board[self.geo.points[action]]

    def stones(self) -> np.ndarray:
        """size x size int8 array: 0 empty, 1 black, 2 white."""
        return np.asarray(self.board, dtype=np.int8)[list(self.geo.points)].reshape(self.size, self.size)

    def recent_boards(self, count: int) -> list[list[int]]:
        """The current board and up to ``count - 1`` earlier ones (most recent first) for history planes."""
        boards = [self.board]
        for record in reversed(self.moves[-(count - 1):] if count > 1 else []):
            boards.append(record.board)
        return boards

    # ------------------------------------------------------------------ moves
    def _dead_chain(self, board: list[int], start: int) -> list[int] | None:
        """The stones of the chain at ``start`` if it has no liberty, else None (stops at the first liberty)."""
        color = board[start]
        neighbours = self.geo.neighbours
        chain = {start}
        stack = [start]
        while stack:
            for q in neighbours[stack.pop()]:
                value = board[q]
                if value == EMPTY:
                    return None
                if value == color and q not in chain:
                    chain.add(q)
                    stack.append(q)
        return list(chain)

    def _try(self, action: int, color: int) -> tuple[list[int], int] | str:
        """The board and hash after ``color`` plays ``action``, or the reason it is illegal."""
        p = self.geo.points[action]
        board = self.board
        if board[p] != EMPTY:
            return "occupied"
        other = opponent(color)
        zobrist_other = self.geo.zobrist[other]
        new = board.copy()
        new[p] = color
        new_hash = self.hash ^ self.geo.zobrist[color][p]
        captured = False
        has_liberty = False
        for q in self.geo.neighbours[p]:
            value = new[q]
            if value == EMPTY:
                has_liberty = True
            elif value == other:
                dead = self._dead_chain(new, q)
                if dead:
                    captured = True
                    for s in dead:
                        new[s] = EMPTY
                        new_hash ^= zobrist_other[s]
        if not captured and not has_liberty and self._dead_chain(new, p) is not None:
            return "suicide"
        if new_hash in self.seen:
            return "superko"
        return new, new_hash

    def play(self, action: int, color: int | None = None) -> None:
        """Play ``action`` for ``color`` (default: the side to move); raises IllegalMove."""
        if self.is_over():
            raise IllegalMove("the game is over")
        if not 0 <= action <= self.pass_action:
            raise IllegalMove(f"action {action} is off the board")
        color = self.to_play if color is None else color
        previous_to_play = self.to_play
        self._legal_cache = None
        if action == self.pass_action:
            self.moves.append(_Undo(action, color, self.board, self.hash, self.passes, previous_to_play, False))
            self.passes += 1
        else:
            result = self._try(action, color)
            if isinstance(result, str):
                raise IllegalMove(f"{action_to_vertex(action, self.size)} is illegal for "
                                  f"{COLOR_NAMES[color]}: {result}")
            self._commit(action, color, result)
            return
        self.to_play = opponent(color)

    def _commit(self, action: int, color: int, result: tuple[list[int], int]) -> None:
        """Apply a stone move already validated by ``_try``."""
        self._legal_cache = None
        self.moves.append(_Undo(action, color, self.board, self.hash, self.passes, self.to_play, True))
        self.board, self.hash = result
        self.seen.add(self.hash)
        self.passes = 0
        self.to_play = opponent(color)

    def resume(self, to_play: int | None = None) -> None:
        """Continue after two passes (GTP lets the controller decide when a game ends) and/or set
        the side to move (GTP allows a colour to move twice)."""
        if self.resigned is None:
            self.passes = min(self.passes, 1)
        if to_play is not None:
            self.to_play = to_play
        self._legal_cache = None

    def resign(self, color: int | None = None) -> None:
        self.resigned = self.to_play if color is None else color
        self._legal_cache = None

    def is_legal(self, action: int, color: int | None = None) -> bool:
        if self.is_over() or not 0 <= action <= self.pass_action:
            return False
        if action == self.pass_action:
            return True
        return not isinstance(self._try(action, self.to_play if color is None else color), str)

    def undo(self) -> int:
        """Take back the last move; returns its action. Raises IllegalMove when there is none."""
        if not self.moves:
            raise IllegalMove("no move to undo")
        record = self.moves.pop()
        self._legal_cache = None
        if record.new_position:
            self.seen.discard(self.hash)
        self.board, self.hash, self.passes, self.to_play = record.board, record.hash, record.passes, record.to_play
        self.resigned = None
        return record.action

    # ------------------------------------------------------------------ whole-board legality
    def _chains(self) -> tuple[list[int], list[int], list[int]]:
        """Label every chain: chain id per padded point (-1 if none), liberty count and stone hash per chain."""
        board, neighbours = self.board, self.geo.neighbours
        zobrist = self.geo.zobrist
        label = [-1] * len(board)
        liberties: list[int] = []
        stone_hash: list[int] = []
        for p in self.geo.points:
            color = board[p]
            if color == EMPTY or label[p] >= 0:
                continue
            chain_id = len(liberties)
            label[p] = chain_id
            stack, libs, key = [p], set(), 0
            while stack:
                s = stack.pop()
                key ^= zobrist[color][s]
                for q in neighbours[s]:
                    value = board[q]
                    if value == EMPTY:
                        libs.add(q)
                    elif value == color and label[q] < 0:
                        label[q] = chain_id
                        stack.append(q)
            liberties.append(len(libs))
            stone_hash.append(key)
        return label, liberties, stone_hash

    def legal_mask(self, color: int | None = None) -> np.ndarray:
        """Boolean array over all actions (pass last) for ``color`` (default: side to move).

        Read-only and cached until the next move: the network's input planes and the search's
        expansion both need it for the same position."""
        color = self.to_play if color is None else color
        if self._legal_cache is not None and self._legal_cache[0] == color:
            return self._legal_cache[1]
        mask = self._compute_legal_mask(color)
        mask.flags.writeable = False
        self._legal_cache = (color, mask)
        return mask

    def _compute_legal_mask(self, color: int) -> np.ndarray:
        mask = np.zeros(self.num_actions, dtype=bool)
        if self.is_over():
            return mask
        mask[-1] = True
        board, neighbours, seen = self.board, self.geo.neighbours, self.seen
        label, liberties, stone_hash = self._chains()
        base_hash = self.hash
        own_key = self.geo.zobrist[color]
        for action, p in enumerate(self.geo.points):
            if board[p] != EMPTY:
                continue
            alive = False
            captured: set[int] = set()
            for q in neighbours[p]:
                value = board[q]
                if value == EMPTY:
                    alive = True
                elif value == color:
                    if liberties[label[q]] > 1:
                        alive = True
                elif liberties[label[q]] == 1:  # opponent chain whose last liberty is p
                    captured.add(label[q])
            if not alive and not captured:
                continue  # suicide
            new_hash = base_hash ^ own_key[p]
            for chain in captured:
                new_hash ^= stone_hash[chain]
            mask[action] = new_hash not in seen
        return mask

    def legal_actions(self) -> list[int]:
        return np.flatnonzero(self.legal_mask()).tolist()

    # ------------------------------------------------------------------ scoring
    def area_owner(self) -> np.ndarray:
        """Tromp-Taylor ownership: +1 black (stone or empty reaching only black), -1 white, 0 neither."""
        board, neighbours = self.board, self.geo.neighbours
        owner = {BLACK: 1, WHITE: -1}
        result = np.zeros(self.size * self.size, dtype=np.int8)
        visited: set[int] = set()
        for action, p in enumerate(self.geo.points):
            color = board[p]
            if color != EMPTY:
                result[action] = owner[color]
                continue
            if p in visited:
                continue
            region, reaches, stack = [p], set(), [p]
            visited.add(p)
            while stack:
                for q in neighbours[stack.pop()]:
                    value = board[q]
                    if value == EMPTY:
                        if q not in visited:
                            visited.add(q)
                            region.append(q)
                            stack.append(q)
                    else:
                        reaches.add(value)
            if len(reaches) == 1:
                value = owner[reaches.pop()]
                for q in region:
                    result[self.geo.action_of[q]] = value
        return result.reshape(self.size, self.size)

    def score(self) -> float:
        """Black's area minus White's area minus komi (positive: Black leads)."""
        return float(self.area_owner().sum()) - self.komi

    def winner(self) -> int:
        """BLACK, WHITE, or EMPTY for a jigo (only possible with an integer komi)."""
        if self.resigned is not None:
            return opponent(self.resigned)
        score = self.score()
        return BLACK if score > 0 else WHITE if score < 0 else EMPTY

    def result_string(self) -> str:
        """SGF/GTP style: 'B+3.0', 'W+R', '0' for a draw."""
        if self.resigned is not None:
            return f"{COLOR_NAMES[opponent(self.resigned)]}+R"
        score = self.score()
        if score == 0:
            return "0"
        return f"{'B' if score > 0 else 'W'}+{abs(score):g}"

    # ------------------------------------------------------------------ display / playouts
    def is_own_eye(self, action: int, color: int) -> bool:
        """A point whose neighbours are all ``color``: filling it is never useful in a random playout."""
        board = self.board
        p = self.geo.points[action]
        return board[p] == EMPTY and all(board[q] == color for q in self.geo.neighbours[p])

    def __str__(self) -> str:
        symbols = {EMPTY: ".", BLACK: "X", WHITE: "O"}
        last = self.moves[-1].action if self.moves else None
        lines = ["   " + " ".join(GTP_COLUMNS[: self.size])]
        for row in range(self.size):
            cells = []
            for col in range(self.size):
                action = row * self.size + col
                cells.append(symbols[self.color_at(action)])
            mark = f"   last: {action_to_vertex(last, self.size)}" if row == 0 and last is not None else ""
            lines.append(f"{self.size - row:2d} " + " ".join(cells) + f" {self.size - row:2d}{mark}")
        lines.append("   " + " ".join(GTP_COLUMNS[: self.size]))
        lines.append(f"{COLOR_NAMES[self.to_play]} to play, komi {self.komi:g}, move {self.move_number}")
        return "\n".join(lines)


def random_playout(state: GoState, rng: random.Random, max_moves: int | None = None) -> GoState:
    """Play uniformly random legal moves that do not fill one's own eye until both sides pass.

    Rejection sampling over the empty points is far cheaper than building the full legal mask each
    move. Modifies and returns ``state``.
    """
    limit = max_moves if max_moves is not None else 3 * state.size * state.size
    size2 = state.size * state.size
    points = state.geo.points
    played = 0
    while not state.is_over() and played < limit:
        color = state.to_play
        board = state.board
        candidates = [a for a, p in enumerate(points) if board[p] == EMPTY]
        remaining = len(candidates)
        # draw without replacement lazily (swap-remove): most draws succeed at once, so a full
        # shuffle of every empty point would be wasted work
        while remaining:
            index = int(rng.random() * remaining)
            action = candidates[index]
            remaining -= 1
            candidates[index] = candidates[remaining]
            if state.is_own_eye(action, color):
                continue
            result = state._try(action, color)
            if not isinstance(result, str):
                state._commit(action, color, result)
                break
        else:
            state.play(size2, color)
        played += 1
    return state
