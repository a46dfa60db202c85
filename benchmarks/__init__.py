"""Benchmarks of derive against its floor (LaTeX alone) and its peers (JAX, PyTorch).

Run ``python -m benchmarks`` from the repository root; see ``benchmarks/README.md``.
"""
