"""Xavier and He initialisation (``Init``): a layer's forward and backward variances from the
moments of independent variables, the weight variances that preserve them, uniform bounds
and the ReLU's halving; checked by enumeration, numerical integration and sampling
(``algebra``, ``claims``)."""

from derive.problems.init_variance.problem import Init

__all__ = ["Init"]
