"""Run `mlcasebook <case> ...` in this process (fast, no interpreter start) and capture what it says."""

from __future__ import annotations

import contextlib
import io
import sys
from unittest import mock


def run_case_cli(capsys, case: str, *args, stdin: str | None = None) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `mlcasebook <case> *args`, optionally reading ``stdin``."""
    from mlcasebook.cli import main

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(sys, "argv", ["mlcasebook", case, *map(str, args)]))
        if stdin is not None:
            stack.enter_context(mock.patch.object(sys, "stdin", io.StringIO(stdin)))
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err
