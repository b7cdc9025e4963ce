"""Operator graphs: typed ops with shapes, FLOPs and bytes, and builders for models."""
