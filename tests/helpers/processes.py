"""What the process tests share: ``audience ...`` as a child process, its
end, and waiting for a child to say where it halted (to kill it there)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def audience(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "audience", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen[str]) -> str:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return out


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    """Until the process reports where it halted (it then waits to be killed)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the scheduler exited: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the scheduler never halted")
        time.sleep(0.05)
