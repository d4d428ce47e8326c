"""`mlcasebook tour`: every registered case in quick mode -> index.html + results.json.

A case that is skipped or fails is reported with its reason; the tour itself never crashes on
one case. Cases are imported here through their public ``SPEC`` only.
"""

from __future__ import annotations

import html
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .core.cases import CaseSkipped, CaseSpec
from .core.errors import DataError
from .core.report import Report, write_json


def registered_cases() -> list[CaseSpec]:
    from .registry import case_specs

    return case_specs()


def run_tour(out_dir: Path, only: list[str] | None = None, smoke: bool = False,
             console: Console | None = None) -> dict:
    console = console or Console(stderr=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = [c for c in registered_cases() if not only or c.name in only]
    results: dict = {"smoke": smoke, "cases": {}}
    for spec in cases:
        console.print(f"[bold]▶ {spec.title}[/] (quick budget {spec.quick_budget_s} s)")
        started = time.perf_counter()
        entry: dict = {"title": spec.title, "budget_s": spec.quick_budget_s}
        try:
            outcome = spec.run_quick(out_dir, smoke)
            entry |= {"status": "ok", "page": outcome.page, "headline": outcome.headline,
                      "numbers": outcome.numbers}
        except (CaseSkipped, DataError) as exc:
            entry |= {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # one broken case must not take the tour down; the report says why
            entry |= {"status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=5)}
        entry["seconds"] = round(time.perf_counter() - started, 1)
        entry["within_budget"] = entry["seconds"] <= spec.quick_budget_s
        results["cases"][spec.name] = entry
        console.print(f"  {entry['status']} in {entry['seconds']} s" +
                      (f": {entry.get('reason')}" if entry["status"] != "ok" else ""))
    _write_index(out_dir, results)
    write_json(out_dir / "results.json", results)
    _print_summary(console, results)
    return results


def _write_index(out_dir: Path, results: dict) -> None:
    report = Report("mlcasebook tour: the course's case studies, rebuilt and measured")
    report.text("Each case ran in quick mode on data that ships with the package's dependencies. "
                "Full benchmarks and their commands: docs/RESULTS.md.", note=True)
    rows = []
    for entry in results["cases"].values():
        link = (f'<a href="{html.escape(entry["page"])}">{html.escape(entry["title"])}</a>'
                if entry["status"] == "ok" else html.escape(entry["title"]))
        detail = "; ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in entry.get("headline", {}).items()) \
            or html.escape(entry.get("reason", ""))
        rows.append(f'<tr><td>{link}</td><td class="{entry["status"]}">{entry["status"]}</td>'
                    f'<td>{entry["seconds"]} / {entry["budget_s"]}</td><td style="text-align:left">{detail}</td></tr>')
    report.html("<table><thead><tr><th>case</th><th>status</th><th>seconds / budget</th><th>headline</th></tr>"
                f"</thead><tbody>{''.join(rows)}</tbody></table>")
    report.write(out_dir / "index.html")


def _print_summary(console: Console, results: dict) -> None:
    table = Table(title="mlcasebook tour")
    for column in ("case", "status", "seconds", "headline"):
        table.add_column(column)
    for name, entry in results["cases"].items():
        headline = ", ".join(f"{k} {v}" for k, v in entry.get("headline", {}).items()) or entry.get("reason", "")
        table.add_row(name, entry["status"], f"{entry['seconds']}", headline)
    console.print(table)
