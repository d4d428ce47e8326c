"""`mlcasebook derm ...`: train, evaluate and predict skin-lesion diagnoses."""

from __future__ import annotations

import typer

app = typer.Typer(help="Skin-lesion classifier on HAM10000 (not a medical device).", no_args_is_help=True)
