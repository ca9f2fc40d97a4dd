"""A plain-Python reference of the segment language (SPEC section 3), of the
scans a program reads (``scans``), and the random programs and stores that
hold the engine to it."""

from .evaluator import Event, SegmentError, dedup, evaluate, evaluate_segment, universe

__all__ = ["Event", "SegmentError", "dedup", "evaluate", "evaluate_segment", "universe"]
