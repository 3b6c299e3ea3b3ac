"""Throw-away services for tests, the demo and benchmarks: nothing already running is touched."""
