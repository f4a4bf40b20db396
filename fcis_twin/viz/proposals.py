"""Figures of notebook ``01_anchors_and_proposals``: anchors, objectness, decoded proposals."""

__all__ = []
