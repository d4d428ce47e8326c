"""`mlcasebook translate ...`: train, evaluate and run translators (SMT, GNMT-style, Transformer)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Case 2 — Google Translate's three generations: phrase-based SMT → GNMT → Transformer.",
                  no_args_is_help=True)
