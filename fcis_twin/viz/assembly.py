"""Figures of notebook ``03_assembling``: bins, part cells and assembled maps."""

__all__ = []
