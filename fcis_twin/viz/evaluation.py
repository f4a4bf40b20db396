"""Figures of notebook ``08_evaluation``: precision/recall, AP and failure cases."""

__all__ = []
