"""`mlcasebook`: one sub-command group per case, plus `tour`.

User-fixable problems (``CasebookError``) print one line with a hint and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from . import __version__
from .core.errors import CasebookError

app = typer.Typer(
    help="The landmark ML systems of an introductory course, rebuilt on real data and measured against "
    "the course's claims and open-source peers.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
err = Console(stderr=True)


def _add_case_apps() -> None:
    from .registry import case_apps

    for name, case_app in case_apps():
        app.add_typer(case_app, name=name)


@app.command()
def tour(
    out: Path = typer.Option(Path("report"), "--out", help="Folder for index.html, results.json and case pages."),
    only: list[str] = typer.Option(None, "--only", help="Run only these cases (repeatable), e.g. --only recsys."),
    smoke: bool = typer.Option(False, help="Tiny data subsets: checks the plumbing in seconds; numbers mean nothing."),
) -> None:
    """Run every case in its quick mode on embedded data and write an HTML report."""
    from .tour import run_tour

    results = run_tour(out, only, smoke)
    err.print(f"report: {out / 'index.html'}")
    if any(c["status"] == "failed" for c in results["cases"].values()):
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


_add_case_apps()


def main() -> None:
    try:
        app()
    except CasebookError as exc:
        err.print(f"[red]error:[/] {exc.message}" + (f" [dim](hint: {exc.hint})[/]" if exc.hint else ""),
                  highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
