"""HTML report pages (tables + matplotlib figures, one self-contained file per case) and the
JSON of all numbers. Figures are embedded as base64 PNG so a page can be mailed or opened alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .checkpoint import atomic_write_text
from .claims import claims_for

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #c00;padding-bottom:.2em}h2{margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}.note{color:#555;font-size:.92em}
.skipped{color:#a60}.failed{color:#c00}.ok{color:#080}
"""


@dataclass
class Report:
    """Collects sections for one page; ``write`` renders them."""

    title: str
    case: str | None = None
    sections: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def heading(self, text: str) -> Report:
        self.sections.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def text(self, text: str, note: bool = False) -> Report:
        cls = ' class="note"' if note else ""
        self.sections.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def html(self, fragment: str) -> Report:
        """Trusted HTML built by the caller (escape user text yourself)."""
        self.sections.append(fragment)
        return self

    def table(self, frame: pd.DataFrame, caption: str = "", digits: int = 4) -> Report:
        self.sections.append(frame_to_html(frame, caption, digits))
        return self

    def figure(self, fig, caption: str = "") -> Report:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        self.sections.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        return self

    def claims_table(self, ours: dict[str, tuple[Any, str]],
                     caption: str = "The chapter's claims beside ours") -> Report:
        """``ours`` maps a claim id to (our measured value, how it was measured)."""
        claims = claims_for(self.case or "")
        rows = []
        for claim_id, claim in claims.items():
            value, how = ours.get(claim_id, (None, "not measured: the data has no such signal"))
            rows.append({"chapter says": claim.statement, "chapter value": f"{claim.value:g} {claim.unit}",
                         "we measured": "—" if value is None else value, "how": how})
        return self.table(pd.DataFrame(rows), caption)

    def record(self, **numbers: Any) -> Report:
        self.numbers.update(numbers)
        return self

    def render(self) -> str:
        body = "\n".join(self.sections)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>")

    def write(self, path: Path | str) -> Path:
        return atomic_write_text(path, self.render())


def frame_to_html(frame: pd.DataFrame, caption: str = "", digits: int = 4) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "—" if math.isnan(value) else f"{value:.{digits}g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def write_json(path: Path | str, numbers: dict[str, Any]) -> Path:
    return atomic_write_text(path, json.dumps(numbers, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_frame(frame: pd.DataFrame, title: str, console=None) -> None:
    """A results table on the terminal (Rich), floats to 4 decimals, model names left-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column == "model" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    (console or Console()).print(table)

