"""What a case offers the tour: a quick run on embedded data within a declared budget.

Cases register a ``CaseSpec``; the tour (``mlcasebook.tour``) runs them. A case whose data is
missing raises ``CaseSkipped`` (or a ``DataError``) and appears in the report with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CaseSkipped(Exception):
    """The case cannot run here (e.g. its data is absent); the message says why."""


@dataclass
class CaseOutcome:
    page: str                                  # file name of the case's HTML page in the tour folder
    headline: dict[str, str]                   # a few figures for the summary table
    numbers: dict[str, Any] = field(default_factory=dict)   # everything, for results.json


@dataclass(frozen=True)
class CaseSpec:
    name: str
    title: str
    quick_budget_s: int
    # run_quick(out_dir, smoke) writes the case's page into out_dir; smoke=True shrinks the data
    # to seconds of work so tests can exercise the whole path
    run_quick: Callable[[Path, bool], CaseOutcome]
