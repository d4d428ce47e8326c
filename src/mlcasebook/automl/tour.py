"""The AutoML case's quick mode for `mlcasebook tour`: the Titanic project on a short budget and
the customer segmentation, each on its own page, with a summary page that links them and sets
the chapter's claim beside what we measured.

The chapter's "90 % less development time" is measured by ``benchmarks/automl_devtime.py`` (a
hand-built tuned pipeline against one ``fit`` call, at equal test score); quick mode does not
repeat that run, and the page says where its figures are.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from ..core.cases import CaseOutcome, CaseSpec
from ..core.report import Report
from .projects import build_project

QUICK_TITANIC_BUDGET_S = 12    # per AutoML search; the Titanic project runs two (Kaggle + raw)
SUBFOLDER = "automl"           # project pages live beside each other, away from other cases' pages


def run_quick(out_dir: Path, smoke: bool = False) -> CaseOutcome:
    folder = Path(out_dir) / SUBFOLDER
    titanic = build_project("titanic", folder, budget_s=QUICK_TITANIC_BUDGET_S, progress=True, smoke=smoke)
    segments = build_project("segmentation", folder, smoke=smoke)

    report = Report("Trend 2 — AutoML and the course's beginner projects", case="automl")
    report.text("AutoML searches preprocessing, models and hyper-parameters under a wall-clock budget and returns "
                "one scikit-learn pipeline. Quick mode runs two of the course's three beginner projects; the third "
                "(house prices) and the benchmark against FLAML run with `mlcasebook automl project houses` and "
                "`benchmarks/automl_suite.py`.", note=True)
    report.heading("Projects")
    rows = []
    for outcome in (titanic, segments):
        link = f'<a href="{SUBFOLDER}/{html.escape(outcome.page.name)}">{html.escape(outcome.name)}</a>'
        detail = "; ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in outcome.headline.items())
        rows.append(f"<tr><td>{link}</td><td>{outcome.numbers['seconds']}</td>"
                    f"<td style='text-align:left'>{detail}</td></tr>")
    report.html("<table><thead><tr><th>project</th><th>seconds</th><th>result</th></tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>")
    tables = titanic.numbers["tables"]
    report.table(pd.DataFrame([t["test"] for t in tables.values()]),
                 f"Titanic, held-out 25 % ({titanic.numbers['budget_s_per_search']:g} s per AutoML search"
                 f"{', smoke mode: 600-row samples' if smoke else ''})")
    report.claims_table({"dev_time_saving": (
        None, "not run in quick mode: benchmarks/automl_devtime.py times a hand-built tuned scikit-learn pipeline "
              "against one automl fit at equal test score (figures in docs/RESULTS.md)")})
    page = "automl.html"
    report.write(Path(out_dir) / page)
    headline = {"titanic ROC AUC": titanic.headline["test ROC AUC"],
                "segments": segments.headline["segments"]}
    return CaseOutcome(page=page, headline=headline,
                       numbers={"titanic": titanic.numbers, "segmentation": segments.numbers})


SPEC = CaseSpec(name="automl", title="Trend 2 — AutoML and the course's beginner projects", quick_budget_s=90,
                run_quick=run_quick)
