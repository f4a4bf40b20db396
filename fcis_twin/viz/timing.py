"""Figures of notebook ``09_kernels_cpu_vs_gpu``: timings of the reference and the backends."""

__all__ = []
