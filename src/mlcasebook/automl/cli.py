"""`mlcasebook automl ...`: fit, predict, explain and the course's projects."""

from __future__ import annotations

import typer

app = typer.Typer(help="AutoML for tabular data, and the course's beginner projects.", no_args_is_help=True)
