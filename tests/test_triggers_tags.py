"""``add_tag`` from two processes at once: no tag is lost.

``add_tag`` reads the contact's tags and writes the longer list; the read and
the write both happen inside the node's matching lock (one matcher per node,
across processes), and the read is of the store's latest version, so a
second process's read sees the first one's write."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from audience.runtime.node import Node, open_node
from audience.runtime.triggers.batch import profile_value

EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"
PER_PROCESS = 6

_INGEST = """
import sys, time
from audience.runtime.node import open_node
root, first, n, start_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
st = open_node(root)
st.triggers.active()
while time.time() < start_at:  # both processes begin together
    time.sleep(0.001)
for k in range(first, first + n):
    report = st.ingest_events([{"id": f"e{k}", "contact_id": "c1", "type": "form_compiled",
        "ts": "2026-11-20T10:00:00Z", "context": "WEB", "form_name": f"f{k}"}])
    assert report.triggers is not None and report.triggers.fired == 1, report
"""


def test_concurrent_add_tag_keeps_every_tag(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    st = Node.init(root, EXAMPLES / "maison.toml")
    st.ingest_profiles([{"contact_id": "c1", "email": "a@example.com", "tags": ["vip"]}])
    n = 2 * PER_PROCESS
    st.triggers.add(
        "".join(
            f'trigger "tag {k}" {{\n on form_compiled where form_name = "f{k}"\n'
            f' do add_tag("t{k}")\n}}\n'
            for k in range(n)
        )
    )
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _INGEST, str(root), str(first), str(PER_PROCESS), str(start_at)]
        )
        for first in (0, PER_PROCESS)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    snap = open_node(root).snapshot()
    tags = profile_value(snap, list(snap.contact_ids).index("c1"), "tags")
    assert sorted(tags) == sorted(["vip", *(f"t{k}" for k in range(n))])
