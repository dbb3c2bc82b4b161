"""Developer tools: helpers for tests, benchmarks and ``make test`` (not used in production)."""
