"""Examples that run: importable as ``examples.*`` from the repository root (the tests use them)."""
