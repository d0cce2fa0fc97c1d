"""Scenarios that a benchmark runs in full and a test in short form: the measuring code, one
copy. The command lines and the docs/benchmarks.md writer stay in ``bench``."""
