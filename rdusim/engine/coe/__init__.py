"""Composition-of-Experts serving: routing, the HBM expert cache, capacity, switching."""
