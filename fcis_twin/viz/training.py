"""Figures of notebook ``10_training``: targets, losses and training curves."""

__all__ = []
