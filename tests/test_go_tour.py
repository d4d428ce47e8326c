"""The Go case's quick mode runs end to end (smoke size) and writes its page."""

from __future__ import annotations

from mlcasebook.core.errors import CasebookError
from mlcasebook.go.match import engine_command
from mlcasebook.go.tour import SPEC


def test_quick_mode_smoke(tour_case):
    out, outcome = tour_case(SPEC.name)  # the session's `mlcasebook tour --smoke` (conftest)
    assert (out / outcome["page"]).is_file()
    results = outcome["numbers"]["results"]
    assert len(results) == 4 and all(0 <= row["win_rate"] <= 1 for row in results)
    assert outcome["numbers"]["curve"][0]["iteration"] == 1
    assert "policy vs random" in outcome["headline"]
    # the shipped 9x9 net plays a few moves against GNU Go, when GNU Go is there
    nine = outcome["numbers"]["shipped_net_vs_gnugo"]
    try:
        engine_command("gnugo:1")
    except CasebookError:
        assert nine is None
        return
    assert nine is not None and 1 <= nine["moves"] <= 6, nine
    assert (out / nine["sgf"]).is_file() and nine["board"].count("X") >= 1
