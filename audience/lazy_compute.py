"""``pyarrow.compute``, imported on first use.

Importing ``pyarrow.compute`` builds a Python wrapper for each of Arrow's
compute functions (~40 ms).  The store's modules use it to ingest and
encode, while opening a store and evaluating a segment call none of it: they
import this module as ``pc`` instead, so a process that only evaluates never
pays for it.  ``pc.NAME`` is ``pyarrow.compute.NAME``.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    import pyarrow.compute

    value = getattr(pyarrow.compute, name)
    globals()[name] = value  # found directly from now on
    return value
