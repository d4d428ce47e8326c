"""The translation case's quick mode runs end to end (smoke size) and skips without its data."""

from __future__ import annotations

import pytest

from mlcasebook.core.cases import CaseSkipped
from mlcasebook.translate.tour import SPEC


def test_tour_smoke(tour_case):
    out, outcome = tour_case(SPEC.name)  # the session's `mlcasebook tour --smoke` (conftest); skips without data
    page = (out / outcome["page"]).read_text(encoding="utf-8")
    # the chapter's claim in the claims table, our Transformer-vs-SMT gain beside it (no GNMT rung here)
    assert "improved BLEU by about 60 %" in page and "Transformer vs SMT" in page and "phrase-based SMT" in page
    rows = {row["arch"]: row for row in outcome["numbers"]["rows"]}
    assert set(rows) == {"smt", "transformer"} and all(0 <= row["bleu"] <= 100 for row in rows.values())
    assert "SMT BLEU" in outcome["headline"]


def test_tour_skips_without_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCASEBOOK_DATA", str(tmp_path))
    with pytest.raises(CaseSkipped, match="Multi30k not found"):
        SPEC.run_quick(tmp_path, True)
