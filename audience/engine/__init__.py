"""Execution: runs a compiled program over a snapshot at one ``now``.

- ``execute``: the steps of a program (``audience.compiler.physical``) in
  order; ``resolve_time`` turns the plan's relative windows into absolute
  ranges at that ``now``.
- ``fused``: every scan of a program in one pass over the partitions;
  ``scan`` the row ranges they share and the rows a sequence reads;
  ``predicates``, ``strings``, ``postings`` and ``typeindex`` the rows a
  filter passes.
- ``kernels``: the numba kernels, generic over the plan (lookup tables, op
  codes and bounds are arguments), so no code is generated per query.
- ``subset``: a snapshot of a few contacts, for a trigger's ``if``.

The engine takes a checked program: it never parses, checks or lowers
(``tests/test_layering.py`` holds both halves to that).
"""
