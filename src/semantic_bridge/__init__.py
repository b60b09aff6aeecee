"""Semantic Bridge: codec, data factory and evaluations."""
