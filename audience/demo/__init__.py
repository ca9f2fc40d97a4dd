"""The sample shop of `audience demo` and the benchmarks."""
