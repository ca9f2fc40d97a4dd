"""``audience inbound import``: reports saved as files, one message per
``.eml`` file, several per mbox file (a file whose first line starts with
``From `` is read as an mbox, whatever its name)."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from audience.runtime.bounces.record import MAX_BYTES, TOO_LARGE, Envelope, Inbound, Outcome


@dataclass(frozen=True)
class FileError(Exception):
    path: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}: {self.why}"


def messages(path: Path) -> Iterator[tuple[bytes | None, Envelope, int]]:
    """(raw message or None when over the cap, its envelope, its size) per message of ``path``."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            first = f.read(5)
    except OSError as exc:
        raise FileError(str(path), exc.strerror or str(exc)) from None
    if first != b"From ":
        env = Envelope(str(path))
        if size > MAX_BYTES:
            yield None, env, size
            return
        yield path.read_bytes(), env, size
        return
    box = mailbox.mbox(str(path), create=False)
    try:
        for i, key in enumerate(box.iterkeys(), 1):
            raw = box.get_bytes(key)
            env = Envelope(f"{path}#{i}")
            yield (None if len(raw) > MAX_BYTES else raw), env, len(raw)
    finally:
        box.close()


def import_files(inbound: Inbound, paths: list[Path]) -> list[Outcome]:
    """Every message of ``paths``; a file that cannot be read raises
    ``FileError`` before anything is recorded."""
    for p in paths:
        if not p.is_file():
            raise FileError(str(p), "no such file")
    out: list[Outcome] = []
    for p in paths:
        for raw, env, size in messages(p):
            if raw is None:
                why = f"{size} bytes, over {MAX_BYTES}"
                out.append(inbound.reject(env, b"", TOO_LARGE, why, size=size))
            else:
                out.append(inbound.receive(raw, env))
    return out
