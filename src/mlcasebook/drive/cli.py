"""`mlcasebook drive ...`: perception, behaviour cloning (PilotNet) and RL driving agents in simulators."""

from __future__ import annotations

import typer

app = typer.Typer(help="Case 3 — Autopilot: vehicle detection, PilotNet from pixels, PPO with safety/comfort/efficiency "
                  "rewards.", no_args_is_help=True)
