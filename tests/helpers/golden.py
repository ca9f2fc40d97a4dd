"""Golden files: every golden test compares its output with the file through
``check``, and one switch rewrites them all from the current output:
``pytest --update-goldens`` (tests/conftest.py), or ``UPDATE_GOLDEN=1`` in the
environment.  Review the rewritten files with ``git diff`` before committing."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "UPDATE_GOLDEN"


def updating() -> bool:
    return os.environ.get(ENV) == "1"


def check(golden: Path, text: str) -> None:
    """``text`` equals the content of ``golden`` (UTF-8); rewritten first when updating."""
    if updating():
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden.name}: run pytest with --update-goldens"
    assert text == golden.read_text(encoding="utf-8")
