"""Figures of notebook ``04_joint_formulation``: mask softmax and class score."""

__all__ = []
