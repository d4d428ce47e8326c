"""`mlcasebook go ...`: the GTP engine, matches between engines, training."""

from __future__ import annotations

import typer

app = typer.Typer(help="AlphaGo-style Go engine (GTP) for small boards, and matches against GNU Go.",
                  no_args_is_help=True)
