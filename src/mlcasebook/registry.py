"""The cases the CLI and the tour know about.

Every case is a sub-package ``mlcasebook.<name>`` with the same shape: ``cli.py`` exposes a Typer
``app`` (mounted as ``mlcasebook <name> ...``) and ``tour.py`` exposes a ``SPEC`` (its quick mode).
Adding a case is adding its name here.
"""

from __future__ import annotations

import importlib

from .core.cases import CaseSpec

CASE_PACKAGES: tuple[str, ...] = ("recsys", "translate", "drive", "go", "derm", "automl")


def case_apps() -> list[tuple[str, object]]:
    """(name, Typer app) for every case, in course order."""
    return [(name, importlib.import_module(f"mlcasebook.{name}.cli").app) for name in CASE_PACKAGES]


def case_specs() -> list[CaseSpec]:
    """The quick-mode spec of every case that has one (a case still being built may have none yet)."""
    specs = []
    for name in CASE_PACKAGES:
        module_name = f"mlcasebook.{name}.tour"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        specs.append(module.SPEC)
    return specs
