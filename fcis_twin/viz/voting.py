"""Figures of notebook ``07_mask_voting_and_paste``: pasting and mask voting."""

__all__ = []
