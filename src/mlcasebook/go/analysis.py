"""KataGo's JSON analysis-engine protocol around our network and search, so KaTrain (which talks
only to KataGo's analysis engine, not GTP) and other KataGo front ends can use it.

One JSON query a line on stdin, one JSON answer a line per analysed turn on stdout; every
malformed query or illegal move gets ``{"id": ..., "error": ...}``, never a crash. What we
cannot honour is said in a ``warning`` line before the answer (KataGo's convention): the rules
are always Tromp-Taylor area scoring, whatever ``rules`` asks.

Spec: https://github.com/lightvector/KataGo/blob/master/docs/Analysis_Engine.md
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from .. import __version__
from ..core.errors import CasebookError
from .board import BLACK, MAX_SIZE, MIN_SIZE, WHITE, GoState, IllegalMove, action_to_vertex, vertex_to_action
from .mcts import MCTS, Node
from .net import NetEvaluator

AREA_RULES = {"tromp-taylor", "chinese", "chinese-ogs", "chinese-kgs", "aga", "bga", "new-zealand"}
COLORS = {"B": BLACK, "W": WHITE}
PV_LENGTH = 10


class QueryError(CasebookError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class AnalysisEngine:
    evaluator: NetEvaluator
    visits: int = 200  # when a query gives no maxVisits
    seed: int = 0

    def handle(self, line: str) -> list[dict]:
        """One input line -> the JSON objects to write (warnings, answers or one error)."""
        query_id = None
        try:
            query = json.loads(line)
            if not isinstance(query, dict):
                raise QueryError("a query must be a JSON object")
            query_id = query.get("id")
            if not isinstance(query_id, str):
                raise QueryError("every query needs a string 'id'", "id")
            return self._answer(query)
        except json.JSONDecodeError as exc:
            return [{"error": f"could not parse JSON: {exc.msg}"}]
        except (CasebookError, ValueError, TypeError, KeyError, IndexError) as exc:
            error = {"error": exc.message if isinstance(exc, CasebookError) else f"bad query: {exc}"}
            if query_id is not None:
                error = {"id": query_id, **error}
            if isinstance(exc, QueryError) and exc.field:
                error["field"] = exc.field
            return [error]

    def serve(self, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        exit_with_parent()
        for line in stdin:
            if line.strip():
                for reply in self.handle(line):
                    stdout.write(json.dumps(reply) + "\n")
                stdout.flush()

    # ---------------------------------------------------------------- queries
    def _answer(self, query: dict) -> list[dict]:
        query_id, action = query["id"], query.get("action")
        if action is not None:  # searches run one at a time, so there is never anything to terminate
            if action in ("terminate", "terminate_all"):
                return [{"id": query_id, "action": action, "terminateId": query.get("terminateId")}]
            if action == "query_version":
                return [{"id": query_id, "action": action, "version": f"mlcasebook-go {__version__}", "git_hash": ""}]
            if action == "clear_cache":
                return [{"id": query_id, "action": action}]
            raise QueryError(f"unknown action {action!r}", "action")
        size = query.get("boardXSize", 19)
        if query.get("boardYSize", size) != size or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
            raise QueryError(f"boards must be square, {MIN_SIZE}x{MIN_SIZE} to {MAX_SIZE}x{MAX_SIZE}", "boardXSize")
        replies = []
        rules = str(query.get("rules", "tromp-taylor")).lower()
        if rules not in AREA_RULES:
            replies.append({"id": query_id, "field": "rules", "warning": f"rules {rules!r} are scored here as "
                            "Tromp-Taylor area scoring (the only rules this engine plays)"})
        states = self._positions(query, size)
        settings = query.get("overrideSettings") or {}
        perspective = str(settings.get("reportAnalysisWinratesAs", "BLACK")).upper()
        visits = int(query.get("maxVisits", self.visits))
        seconds = settings.get("maxTime")
        if visits < 1:
            raise QueryError("maxVisits must be at least 1", "maxVisits")
        for turn in query.get("analyzeTurns", [len(states) - 1]):
            if not isinstance(turn, int) or not 0 <= turn < len(states):
                raise QueryError(f"analyzeTurns: turn {turn!r} is not in 0..{len(states) - 1}", "analyzeTurns")
            replies.append(self._analyse(query_id, turn, states[turn], visits, seconds, perspective,
                                         bool(query.get("includeOwnership")), bool(query.get("includePolicy"))))
        return replies

    @staticmethod
    def _positions(query: dict, size: int) -> list[GoState]:
        """The position before every move of the query (turn 0 ... len(moves))."""
        komi = float(query.get("komi", 7.0))
        rows = [["."] * size for _ in range(size)]
        for color, vertex in query.get("initialStones", []):
            action = vertex_to_action(vertex, size)
            if action == size * size or str(color).upper() not in COLORS:
                raise QueryError(f"bad initial stone {[color, vertex]}", "initialStones")
            row, col = divmod(action, size)
            rows[row][col] = "X" if str(color).upper() == "B" else "O"
        moves = query.get("moves", [])
        first = moves[0][0] if moves else query.get("initialPlayer", "B")
        if str(first).upper() not in COLORS:
            raise QueryError(f"unknown player {first!r}", "initialPlayer")
        state = GoState.from_diagram("\n".join("".join(row) for row in rows), COLORS[str(first).upper()], komi)
        states = [state.clone()]
        for number, (color, vertex) in enumerate(moves):
            if str(color).upper() not in COLORS:
                raise QueryError(f"move {number}: unknown player {color!r}", "moves")
            if state.is_over():  # KataGo plays on after two passes; so do we (GTP's resume)
                state.resume()
            try:
                state.play(vertex_to_action(vertex, size), COLORS[str(color).upper()])
            except IllegalMove as exc:
                raise QueryError(f"Illegal move {number}: {color} {vertex} ({exc})", "moves") from exc
            states.append(state.clone())
        return states

    def _analyse(self, query_id: str, turn: int, state: GoState, visits: int, seconds: float | None,
                 perspective: str, ownership: bool, policy: bool) -> dict:
        size, to_play = state.size, state.to_play
        # Black's view by default (KaTrain forces it); SIDETOMOVE and WHITE as KataGo defines them
        flip = {"BLACK": to_play != BLACK, "WHITE": to_play != WHITE}.get(perspective, False)

        def view(value: float) -> float:  # a side-to-move value -> the reported perspective
            return -value if flip else value

        if state.is_over():  # after two passes KataGo still analyses the position: the game may go on
            state = state.clone()
            state.resume()
        search = MCTS(self.evaluator, seed=self.seed)
        result = search.search(state, simulations=visits, seconds=float(seconds) if seconds else None)
        root = search.root
        order = np.argsort(-root.visits, kind="stable")
        children = [int(i) for i in order if root.visits[i] > 0]
        # the score head at the root and after each searched move: the search itself tracks only values
        after = [state.clone() for _ in children]
        for child_state, index in zip(after, children, strict=True):
            child_state.play(int(root.actions[index]))
        predicted = self.evaluator.predict([state, *after], all_heads=True)
        area = size * size
        # the root's score as KataGo reports it, an average over the search: the searched moves'
        # scores weighted by visits (KaTrain's "points lost" is root score minus a move's score)
        child_scores = -predicted["score"][1:] * area
        root_score = float(np.average(child_scores, weights=root.visits[children])) if children else \
            float(predicted["score"][0]) * area
        move_infos = []
        for rank, index in enumerate(children):
            q = float(root.value_sum[index] / root.visits[index])
            score = float(child_scores[rank])  # the child's side to move is the opponent: negated above
            move_infos.append({
                "move": action_to_vertex(int(root.actions[index]), size), "order": rank,
                "visits": int(root.visits[index]), "prior": float(root.clean_prior[index]),
                "winrate": (view(q) + 1) / 2, "utility": view(q), "lcb": (view(q) + 1) / 2,
                "scoreLead": view(score), "scoreMean": view(score), "scoreSelfplay": view(score),
                "pv": principal_variation(root, index, size),
            })
        answer = {
            "id": query_id, "isDuringSearch": False, "turnNumber": turn, "moveInfos": move_infos,
            "rootInfo": {"winrate": (view(result.root_value) + 1) / 2, "utility": view(result.root_value),
                         "scoreLead": view(root_score), "scoreMean": view(root_score),
                         "scoreSelfplay": view(root_score), "visits": result.simulations,
                         "currentPlayer": "B" if to_play == BLACK else "W"},
        }
        if policy:
            priors = np.full(area + 1, -1.0)
            priors[root.actions] = root.clean_prior
            answer["policy"] = priors.tolist()
        if ownership:  # the head says "side to move owns it"; KataGo reports it like the winrate
            answer["ownership"] = [view(float(v)) for v in predicted["ownership"][0].reshape(-1)]
        return answer


def exit_with_parent(poll_seconds: float = 1.0) -> None:
    """End this process when the program that started it goes away.

    KaTrain starts a custom engine command through a shell and stops it with terminate(), which
    reaches only the shell: the engine would live on, holding KaTrain's pipes, and KaTrain's
    shutdown would wait on them forever (measured with KaTrain 1.20)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:  # re-parented: the starter died
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def principal_variation(root: Node, index: int, size: int) -> list[str]:
    """The move at ``index`` and the most visited line below it."""
    line, node = [int(root.actions[index])], root.children[index]
    while node is not None and len(line) < PV_LENGTH and node.visits.sum() > 0:
        best = int(np.argmax(node.visits))
        line.append(int(node.actions[best]))
        node = node.children[best]
    return [action_to_vertex(action, size) for action in line]
