"""The chapter's claims as data, so every report can print them beside our measurements."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Claim:
    case: str
    claim: str
    statement: str
    value: float
    unit: str


@cache
def all_claims() -> tuple[Claim, ...]:
    text = resources.files("mlcasebook.core").joinpath("claims.csv").read_text(encoding="utf-8")
    return tuple(Claim(r["case"], r["claim"], r["statement"], float(r["value"]), r["unit"])
                 for r in csv.DictReader(text.splitlines()))


def claims_for(case: str) -> dict[str, Claim]:
    return {c.claim: c for c in all_claims() if c.case == case}
