"""Unlearning methods, one module per method (`ga` so far)."""
