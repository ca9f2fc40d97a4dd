"""Plan passes: small pure functions, run in the order of ``PASSES``."""
