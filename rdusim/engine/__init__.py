"""Simulation engines (SimPy lives only in this package)."""
