"""Matrix powers through the eigendecomposition (LMU exercise 5-2 b, c).

For a diagonalizable M = Q Λ Q^-1, M^n = Q Λ^n Q^-1 (by induction on n).  For the
handout's W the engine finds Q and Λ exactly (rationals), computes W^n exactly, checks the
decomposition printed in the handout against W, and shows with numbers what eigenvalues
below, above and equal to one do to W^n.

W may be any diagonalizable 2x2 matrix of exact numbers up to 10^6 (denominators up to
10^6) and n up to 200, so W^n reaches 10^1200 and its irrational relatives cancel through
thousands of digits: the numeric checks run on ``derive.engine.exact_matrix``, which uses float64
only where a rounding bound shows that float64 holds and resolves the numbers.

``params`` holds the handout's data and the generator of variants, ``problem`` the model
and its derivation, ``claims`` the claims and their routes.
"""

from derive.problems.eigen_power.params import HANDOUT_W, symmetric_candidates
from derive.problems.eigen_power.problem import EigenPower

__all__ = ["HANDOUT_W", "EigenPower", "symmetric_candidates"]
