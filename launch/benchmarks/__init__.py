"""One module per benchmark; see launch/benchmark.py."""
