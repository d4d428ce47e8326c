"""The detector and PPO commands of `mlcasebook drive` (registered on the case's app by ``cli.py``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the perception and reinforcement-learning commands to ``app``."""
