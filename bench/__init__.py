"""Benchmarks and their data generators (run with `make bench`)."""
