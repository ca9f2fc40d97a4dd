"""The one switch that rewrites golden files (tests/helpers/golden.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import golden

ROOT = Path(__file__).resolve().parents[1]


def test_check_compares_and_rewrites_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(golden.ENV, raising=False)
    path = tmp_path / "x.err"
    with pytest.raises(AssertionError, match=r"no golden file x\.err"):
        golden.check(path, "one\n")
    path.write_text("one\n", encoding="utf-8")
    golden.check(path, "one\n")
    with pytest.raises(AssertionError):
        golden.check(path, "two\n")
    assert path.read_text(encoding="utf-8") == "one\n"
    monkeypatch.setenv(golden.ENV, "1")
    golden.check(path, "two\n")
    assert path.read_text(encoding="utf-8") == "two\n"


def test_the_option_turns_updating_on() -> None:
    if os.environ.get("AUDIENCE_TEST_EXPECT_UPDATE") is None:
        pytest.skip("run by test_update_goldens_option_reaches_the_tests")
    assert golden.updating() == (os.environ["AUDIENCE_TEST_EXPECT_UPDATE"] == "1")


@pytest.mark.parametrize("option", [True, False])
def test_update_goldens_option_reaches_the_tests(option: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != golden.ENV}
    env |= {"AUDIENCE_TEST_EXPECT_UPDATE": "1" if option else "0", "PYTHONPATH": str(ROOT)}
    test = "tests/test_goldens.py::test_the_option_turns_updating_on"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    proc = subprocess.run(
        args + (["--update-goldens"] if option else []),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
