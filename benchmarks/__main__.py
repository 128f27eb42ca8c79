"""`python -m benchmarks`: the benchmark suite (benchmarks/suite.py, benchmarks/README.md)."""

import sys

from benchmarks.suite import main

sys.exit(main())
