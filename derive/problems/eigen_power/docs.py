"""What each result of eigen_power is: the JSON export's documented keys."""

from __future__ import annotations

RESULTS: dict[str, str] = {
    "W": "The matrix W (given or the handout's).",
    "Q": "Unit eigenvectors of W as columns, eigenvalues increasing.",
    "Lambda": "The diagonal matrix of W's eigenvalues, increasing.",
    "spectral_radius": "The largest absolute value of an eigenvalue of W.",
    "Q_inv": "The inverse of Q.",
    "Q_orthogonal": "Whether Q is orthogonal (Q^-1 = Q^T).",
    "Lambda_power": "Lambda to the power n, entry by entry.",
    "W_power": "W^n = Q Lambda^n Q^-1, exactly.",
    "power_digits": "The number of digits of the longest exact entry of W^n.",
    "power_zero": "Whether W^n is the zero matrix.",
    "power_shrinks": "Whether W^n tends to zero as n grows (spectral radius below 1).",
    "terminating": "Whether every entry of W is a terminating decimal.",
    "given_product": (
        "The stated decomposition multiplied out, Q Lambda Q^-1; null unless `given_Q` is "
        "given."
    ),
    "given_decomposition_ok": (
        "Whether the stated decomposition reproduces W; null unless `given_Q` is given."
    ),
    "given_wrong_entries": (
        "Positions (row, column, from 1) where the stated product differs from W; null unless"
        " `given_Q` is given."
    ),
    "given_sign_flips_only": (
        "Whether every wrong entry of the stated product is minus W's; null unless `given_Q` "
        "is given."
    ),
    "given_q_transposed_ok": (
        "Whether the transpose of the stated Q reproduces W; null unless `given_Q` is given."
    ),
    "flipped_W": (
        "W with the entries the stated decomposition gets wrong negated (the reading in "
        "which extraction lost their minus signs); null unless that decomposition is wrong."
    ),
    "flipped_decomposition_ok": "Whether the stated decomposition reproduces that W.",
    "flipped_power": "That W to the power n through the stated decomposition.",
    "flipped_same_eigenvalues": "Whether that W has the eigenvalues of W (the stated ones).",
    "induction_step": (
        "The inductive step M^(n+1) - Q Lambda^(n+1) Q^-1 in symbols, which simplifies to "
        "zero."
    ),
    "regime_contracting": (
        "The contracting regime's matrix: eigenvalues and the exact norms of its powers at "
        "the tabulated steps."
    ),
    "regime_expanding": "The expanding regime's matrix: eigenvalues and norms of its powers.",
    "regime_unit": "The regime with eigenvalues 1: eigenvalues and norms of its powers.",
    "regime_unit_defective": (
        "The defective matrix with eigenvalue 1: eigenvalues and norms of its powers, which "
        "grow linearly."
    ),
    "norm_curves": "The plotted norms of each regime's powers at k = 1, 2, ...",
    "defective_power": "The k-th power of the defective matrix, in the symbol k.",
}
