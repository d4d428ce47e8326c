"""KaTrain's own engine code, headless, driving `mlcasebook go analysis` — the check behind the
KaTrain paragraph of docs/go.md.

KaTrain (and its GUI toolkit, Kivy) is not a dependency of mlcasebook; install it in a separate
environment and run this there, giving it our engine's command line:

    python3.11 -m venv /tmp/katrain && /tmp/katrain/bin/pip install katrain
    /tmp/katrain/bin/python benchmarks/go_katrain_check.py "$PWD/.venv/bin/mlcasebook go analysis --visits 64"

It starts KaTrain's ``KataGoEngine`` with the engine command override (``backend: custom``,
``altcommand``), asks it to analyse a 9x9 position through a KaTrain ``GameNode``, and prints
what KaTrain then shows: score, win rate, candidate moves with points lost, the policy ranking,
ownership. Exit status 1 if the analysis never completes or KaTrain logged an error.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("KIVY_NO_ARGS", "1")  # Kivy would otherwise parse our command line

from katrain.core.constants import OUTPUT_ERROR  # noqa: E402 — after the Kivy setting
from katrain.core.engine import KataGoEngine  # noqa: E402
from katrain.core.game_node import GameNode  # noqa: E402
from pysgf import Move  # noqa: E402 — KaTrain's SGF library


class HeadlessKatrain:
    """The little of KaTrain's app object its engine calls: a log, popups, a redraw."""

    def __init__(self):
        self.errors: list[str] = []

    def log(self, message, level=0):
        if os.environ.get("KATRAIN_CHECK_VERBOSE"):
            print(f"[{level}] {str(message)[:300]}", flush=True)
        if level == OUTPUT_ERROR:
            self.errors.append(str(message))

    def __call__(self, *args):  # popups (e.g. the engine recovery dialog) are errors here
        self.errors.append(f"popup {args}")

    def update_state(self, *args, **kwargs):
        pass


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "mlcasebook go analysis --visits 64"
    app = HeadlessKatrain()
    config = {"backend": "custom", "altcommand": command, "max_visits": 64, "fast_visits": 16,
              "max_time": 10.0, "_enable_ownership": True, "wide_root_noise": 0.0}
    engine = KataGoEngine(app, config)
    root = GameNode(properties={"SZ": "9", "KM": "7", "RU": "chinese"})
    node = root.play(Move.from_gtp("E5", player="B")).play(Move.from_gtp("C3", player="W"))
    node.analyze(engine)
    started = time.time()
    while not node.analysis_complete and time.time() - started < 120:
        time.sleep(0.2)
    errors = list(app.errors)
    # KaTrain's own shutdown: terminate() reaches only the shell it started the command with; our
    # engine notices its parent is gone and exits, so the join on KaTrain's reader threads returns
    stop = time.time()
    engine.shutdown(finish=False)
    print(f"KaTrain shutdown took {time.time() - stop:.1f} s")
    print("analysis complete:", node.analysis_complete, f"({time.time() - started:.1f} s)")
    if node.analysis_complete:
        print("score", node.format_score(), "| win rate", node.format_winrate(), "| visits", node.root_visits)
        print("candidates (move, visits, points lost):",
              [(c["move"], c["visits"], round(c["pointsLost"], 2)) for c in node.candidate_moves[:5]])
        print("policy ranking:", [(m.gtp(), round(p, 3)) for p, m in node.policy_ranking[:3]])
        print("ownership points:", len(node.ownership or []))
    print("KaTrain errors:", errors or "none")
    return 0 if node.analysis_complete and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
