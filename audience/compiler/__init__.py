"""AST -> checked logical plan -> physical plan of numba kernels.

- ``lower``: AST -> logical plan (``plan``): one node per condition with the
  event rows it reads (``RowFilter``: types, predicate, window).
- ``physical``: logical plan -> flat program of steps; ``passes`` run on it
  (dedupe equal steps, fuse scans of the same rows).
- ``execute``: runs a program at one ``now`` (``passes.resolve_time`` turns
  windows into absolute ranges); ``scan``/``predicates`` feed the generic
  ``kernels``, parametrised by arrays (lookup tables, op codes, bounds), so no
  code is generated per query.
The public entry points are in ``audience.runtime.evaluate``.
"""
