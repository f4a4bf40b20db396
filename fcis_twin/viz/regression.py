"""Figures of notebook ``05_bbox_regression_second_pass``: box maps and the second pass."""

__all__ = []
