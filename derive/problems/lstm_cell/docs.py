"""What each result of the LSTM cell problem is (the JSON export's documented keys), and
what the evidence calls its claims."""

from __future__ import annotations

RESULTS: dict[str, str] = {
    "cell_gradient_sum": (
        "dL/dW through the cell states as the double sum over t and k that uses dL_t/dC_t."
    ),
    "path_counts": (
        "How often each path from C_k into the loss is counted when dL/dC_t is used instead."
    ),
    "dC_dCprev": (
        "The Jacobian dC_t/dC_{t-1} of the cell state through every path (gates included), in"
        " vector form."
    ),
    "J_ones": (
        "That Jacobian applied to the vector of ones (its row sums), in the handout's "
        "abbreviation delta."
    ),
    "dC_dCk_f1_i0": (
        "dC_t/dC_k with every forget gate 1 and input gate 0; value: whether it is the "
        "identity matrix."
    ),
    "positive": (
        "The gates whose values are always positive, by interval arithmetic; text: their "
        "names."
    ),
    "sign_table": (
        "Per figure quantity: its range (exact), whether it is always positive, its smallest "
        "sampled values in float64 and in mpmath."
    ),
    "gate_gap": "How far the saturated run's gates are from 1 and 0 (the largest gap).",
    "printed_formula_error": (
        "The largest relative error of the formula as the handout prints it, against the "
        "derived row sums."
    ),
}

#: What the evidence tables call the claims that no left-hand side names.
CLAIM_NAMES: dict[str, str] = {
    "path_counts": "how often each path into the loss is counted",
    "J_ones": "{lhs} and the printed formula",
    "printed_formula_error": "the printed formula's error",
    "gate_gap": "how far the gates are from $f = 1$, $i = 0$",
    "positive": "signs of the gate values", "sign_table": "ranges of the gate values",
}
