"""AST -> checked logical plan -> physical plan of numba kernels."""
