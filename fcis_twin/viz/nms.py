"""Figures of notebook ``06_nms``: greedy NMS and its thresholds."""

__all__ = []
