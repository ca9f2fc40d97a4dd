"""The journal of unmatched ingests (rows for small ones, files for big ones)
and the firings committed with its deletion."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from audience.runtime.triggers import state as state_mod
from audience.runtime.triggers.state import Firing, NodeState


def table(n: int) -> pa.Table:
    return pa.table({"__ts": pa.array(range(n), pa.int64()), "__id": [f"e{i}" for i in range(n)]})


def test_row_and_file_journals_in_version_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = NodeState(tmp_path)
    small = st.write_journal(3, table(2))
    monkeypatch.setattr(state_mod, "ROW_JOURNAL_MAX", 0)
    big = st.write_journal(4, table(5))
    assert small is not None and small.row is not None and small.path is None
    assert big is not None and big.path is not None and big.path.exists()
    assert st.pending_journals(2) == []
    assert st.pending_journals(3) == [small]
    assert st.pending_journals(9) == [small, big]
    got = st.read_journal(big)
    assert got is not None and got.equals(table(5))
    # another process sees the same journal
    other = NodeState(tmp_path)
    assert other.pending_journals(9) == [small, big]
    got = other.read_journal(small)
    assert got is not None and got.equals(table(2))


def test_a_version_that_never_landed_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = NodeState(tmp_path)
    monkeypatch.setattr(state_mod, "ROW_JOURNAL_MAX", 0)
    lost_file = st.write_journal(5, table(1))
    monkeypatch.setattr(state_mod, "ROW_JOURNAL_MAX", 1 << 20)
    lost_row = st.write_journal(6, table(1))
    # the ingest of version 5 never landed: the next ingest takes its number
    again = st.write_journal(5, table(3))
    assert again is not None and again.row is not None
    assert lost_file is not None and lost_file.path is not None and not lost_file.path.exists()
    assert st.pending_journals(9) == [again]
    assert lost_row is not None and st.read_journal(lost_row) is None


def test_firings_commit_with_the_journals_deletion(tmp_path: Path) -> None:
    st = NodeState(tmp_path)
    j = st.write_journal(1, table(1))
    assert j is not None
    firings = st.firings()
    firings.add(Firing("T", "e0", "c1", 0, 1, 10, "[]"))
    assert firings.fired("T", "e0") and not NodeState(tmp_path).firings().fired("T", "e0")
    st.journal_done(j, firings)
    assert st.pending_journals(9) == [] and st.read_journal(j) is None
    reopened = NodeState(tmp_path).firings()
    assert reopened.fired("T", "e0") and reopened.fired_for("T", "c1", None, None)


def test_a_journal_file_left_half_written_by_a_kill_is_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = NodeState(tmp_path)
    monkeypatch.setattr(state_mod, "ROW_JOURNAL_MAX", 0)
    kept = st.write_journal(3, table(2))
    assert kept is not None and kept.path is not None
    # what a process killed between writing and renaming its journal leaves behind
    half = kept.path.parent / "00000004-0123456789ab.arrow.tmp"
    half.write_bytes(b"ARROW1 half")
    st.discard_after(3)
    assert not half.exists()
    assert kept.path.exists() and st.pending_journals(9) == [kept]
