"""`mlcasebook drive ...`: perception, behaviour cloning (PilotNet) and RL driving agents in simulators.

The driving commands (play, collect, train, evaluate) live here; the detector and PPO commands are
registered from ``cli_detect_rl`` so the two halves of the case can grow independently.
"""

from __future__ import annotations

import typer

from . import cli_detect_rl

app = typer.Typer(help="Case 3 — Autopilot: vehicle detection, PilotNet from pixels, PPO with safety/comfort/efficiency "
                  "rewards.", no_args_is_help=True)

cli_detect_rl.register(app)
