"""Evidence that grading is right and fast: the wheat/chaff corpus, the benchmark, the demo class.
Trusted side; never imported by the grading steps (an import-linter contract)."""
