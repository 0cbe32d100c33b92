"""benchlib: the pieces of bench/bench.py (see each module's docstring)."""
