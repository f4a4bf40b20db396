"""Figures of notebook ``02_position_sensitive_score_maps``: inside/outside score maps."""

__all__ = []
