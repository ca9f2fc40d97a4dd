"""``audience check`` and ``audience fmt`` as a user runs them: a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import audience

EXAMPLES = Path(audience.__file__).parent / "examples"
SPEC_ERROR = """\
error: expected a window such as 'in last 15 days', found '15'
 --> red_shoes.rules:3:58
  |
3 |   did viewed_product where product_name = "Red Shoes" in 15 days
  |                                                          ^^
help: write 'in last 15 days'
"""


def run(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "audience", *args],
        input=stdin.decode("latin-1") if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_check_accepts_the_seed_definitions() -> None:
    proc = run("check", str(EXAMPLES / "maison.rules"), "--schema", str(EXAMPLES / "maison.toml"))
    assert proc.returncode == 0, proc.stderr
    assert "ok against the schema: 4 segments, 1 trigger, 1 dnd policy" in proc.stdout
    assert "segment 'Red Shoes viewed without purchase' (line 3)" in proc.stdout


def test_check_prints_the_spec_error_exactly(tmp_path: Path) -> None:
    path = tmp_path / "red_shoes.rules"
    path.write_text(
        'segment "Red Shoes" {\n  rule "Clicked Red shoes" (\n'
        '  did viewed_product where product_name = "Red Shoes" in 15 days\n  )\n}\n'
    )
    proc = run("check", "red_shoes.rules", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(SPEC_ERROR)
    assert proc.stderr.rstrip().endswith("red_shoes.rules: 1 error")


def test_check_reports_every_schema_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.rules"
    path.write_text('segment "A" {\n  did purchase in last 3 days\n  and cty = "Milan"\n}\n')
    proc = run("check", str(path), "--schema", str(EXAMPLES / "maison.toml"))
    assert proc.returncode == 1
    assert "unknown event type 'purchase'" in proc.stderr
    assert "did you mean 'purchased'?" in proc.stderr
    assert "city" in proc.stderr
    assert proc.stderr.rstrip().endswith("2 errors")


@pytest.mark.parametrize(
    "payload",
    [
        bytes(range(256)) * 4,  # binary garbage
        b'segment "x" { did viewed_product where product_name = "\xff\xfe" }',  # invalid UTF-8
        b"(" * 10_000 + b"did purchased" + b")" * 10_000,
        b"not " * 10_000 + b"did purchased",
        b"",
        b"\x00\x00\x00",
    ],
    ids=["garbage", "invalid-utf8", "10k-parens", "10k-not", "empty", "nul"],
)
def test_check_never_crashes(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "input.rules"
    path.write_bytes(payload)
    proc = run("check", str(path))
    assert proc.returncode in (0, 1)
    if proc.returncode == 1:
        assert proc.stderr.startswith("error: ")


def test_check_refuses_a_50_mb_file_quickly(tmp_path: Path) -> None:
    path = tmp_path / "huge.rules"
    line = b'segment "s" { did viewed_product in last 15 days }\n'
    path.write_bytes(line * (50 * 1024 * 1024 // len(line) + 1))
    proc = run("check", str(path))
    assert proc.returncode == 1
    assert "too large" in proc.stderr


def test_check_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    proc = run("check", str(tmp_path / "nope.rules"))
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr


def test_check_reads_standard_input() -> None:
    proc = run("check", "-", stdin=b"did purchased in last 30 days")
    assert proc.returncode == 0
    assert "1 bare condition" in proc.stdout


def test_fmt_prints_the_canonical_text_and_check_flags_drift(tmp_path: Path) -> None:
    path = tmp_path / "messy.rules"
    path.write_text('SEGMENT "s" {  DID purchased   IN LAST 3 DAYS AND city="Milan" }')
    proc = run("fmt", str(path))
    assert proc.returncode == 0, proc.stderr
    canonical = proc.stdout
    assert "did purchased in last 3 days" in canonical
    assert run("fmt", "--check", str(path)).returncode == 1
    assert run("fmt", "--write", str(path)).returncode == 0
    assert path.read_text() == canonical
    assert run("fmt", "--check", str(path)).returncode == 0
