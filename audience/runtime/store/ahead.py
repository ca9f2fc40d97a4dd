"""An iterator's items produced one ahead by a thread.

The ingest's stages (decoding Parquet, checking a batch, encoding it into the
store) are Arrow, numpy and numba work that releases the GIL, so running one
stage a batch ahead of the next uses a second core.  Memory stays bounded:
the producer waits while one finished item is not yet taken.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def ahead(items: Iterator[T], name: str) -> Generator[T, None, None]:
    """``items``, in order, with the next one made by a thread meanwhile.  An
    exception raised making an item is raised here, in its place; when the
    consumer stops early the thread stops after the item it is making."""
    q: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # raised in the consumer, in order
            q.put(_Failed(exc))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        # The consumer stopped early (an error downstream): let the thread end.
        stop.set()
        with contextlib.suppress(queue.Empty):
            q.get_nowait()
        worker.join()
