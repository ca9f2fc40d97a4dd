"""Peer comparison: the same segments evaluated by our engine, DuckDB and Polars.

``python -m benchmarks.peers.run`` generates the Maison shop at each size (cached
Parquet), checks that every engine returns the same contacts for every workload,
then times them, each engine in its own process so that peak memory is its own.
"""
