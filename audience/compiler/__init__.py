"""Compile time: AST -> checked logical plan -> physical program.

- ``lower``: AST -> logical plan (``plan``): one node per condition with the
  event rows it reads (``RowFilter``: types, predicate, window).
- ``physical``: logical plan -> flat program of steps; ``passes`` run on it
  (dedupe equal steps, fuse scans of the same rows).
- ``render`` and ``explain_words``: the text of plans and of their steps.

Pure Python over the AST and the schema: compiling loads no numpy, numba or
snapshot.  The program it yields is run by ``audience.engine``, which never
imports back; the public entry points are in ``audience.runtime.evaluate``.
"""
