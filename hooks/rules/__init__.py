"""Lint rules: one module per family, each rule a class with its docs and examples."""
