"""Where BatchNorm, ReLU and the addition sit in a residual block (CSE 891 hw3, question 3.2).

The handout's figure did not survive text extraction; its labels did, in order.  Read top to
bottom, with the skip connection carrying the block input x to the "+" node::

    (1)  y = x + ReLU(BN(W2 ReLU(BN(W1 x))))      the skip joins after the whole branch
    (2)  y = ReLU(BN(x + W2 ReLU(BN(W1 x))))      BN and ReLU come after the addition

Each block is data: the operations of ``ORDERINGS``, where ``add`` adds x itself.

Structure.  With S the skip-path term, ∂y/∂x = S + ∂F/∂x, and S is the product of the
Jacobians of the operations after the addition: S = I for (1), S = D J for (2) (J the
batch-mode BN Jacobian, D = diag of ReLU's 0/1 mask).  Along the skip edges of L stacked
blocks the factors multiply: I for (1), D_L J_L ... D_1 J_1 for (2).  ``skip_term`` derives
these from the operation lists (``structure``); the checks differentiate explicit symbolic
blocks (branch held fixed; generic weights, BN and ReLU as unspecified functions) with SymPy.

Experiment.  A stack of L blocks of each kind at initialisation (fully connected weights,
He init, BN in training mode with batch statistics, γ = 1, β = 0), on one batch X_0 and one
loss ℓ = Σ R ⊙ X_L with a fixed random R.  The gain is

    G_k(L) = ‖∂ℓ/∂X_0‖_F / ‖∂ℓ/∂X_L‖_F      (‖∂ℓ/∂X_L‖_F = ‖R‖_F)

for ordering k, computed by a hand-written reverse pass.  ``grad_norm_ratio`` is
G_2(L_max) / G_1(L_max); ``easier`` is the ordering whose log10 G varies least over the
depths.  The reverse pass is checked against complex steps and central differences of the
forward pass (``claims``); the stack itself is simulated by ``derive.instances.bnstack``.
"""

from derive.problems.resnet_bn.decision import easier_ordering, growth, log_range
from derive.problems.resnet_bn.problem import SEED, ResnetBN
from derive.problems.resnet_bn.structure import (
    ORDERINGS,
    N,
    op_jacobian,
    skip_mismatches,
    skip_stack,
    skip_term,
)

__all__ = [
    "ORDERINGS",
    "SEED",
    "N",
    "ResnetBN",
    "easier_ordering",
    "growth",
    "log_range",
    "op_jacobian",
    "skip_mismatches",
    "skip_stack",
    "skip_term",
]
