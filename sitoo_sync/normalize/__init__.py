"""normalize/: pure functions from JSON records to typed rows of declared tables."""
