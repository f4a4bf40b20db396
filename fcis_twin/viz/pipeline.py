"""Figures of notebook ``00_overview``: the whole pipeline on one image."""

__all__ = []
