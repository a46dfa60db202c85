"""The author's order and the author's brackets in the bundled keys and handouts.

Sums print their terms and products their factors as the model's equations are written
(w_ix x + w_ih h, f c + i g), an adjoint reads "adjoint, then the local derivative" with
the factors in forward order (h-bar o (1 - tanh^2 c)), tall brackets stand only around tall
content, the identity has one symbol and the vector of ones is defined where it is used.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sympy as sp
from conftest import key_tex

from derive.engine.cell import bar, timed
from derive.render.latex import KeyPrinter, Ordering, slim_brackets
from derive.sets import bundled

#: The sets whose key holds the LSTM of CSC421's handout (and its notation).
LSTM_SETS = ("csc421_hw3", "hw7")
#: \left( around one symbol, with its scripts: \left(g^{(t + 1)}\right), \left(c \right).
SINGLE = re.compile(
    r"\\left\(\s*(\\overline\{)?\\?[A-Za-z]+(\{[^{}]*\})?"
    r"(?:[_^](?:\{[^{}]*\}|[A-Za-z0-9]))*\}?\s*\\right\)"
)


def key(bundled_keys: Path, set_id: str) -> str:
    return (bundled_keys / set_id / "answer-key.tex").read_text(encoding="utf-8")


@pytest.mark.parametrize("set_id", LSTM_SETS)
def test_lstm_key_writes_the_cell_as_the_handout_does(bundled_keys: Path, set_id: str) -> None:
    tex = key(bundled_keys, set_id)
    assert r"\sigma(w_{ix} x^{(t)} + w_{ih} h^{(t - 1)})" in tex
    assert r"c^{(t)} &= f^{(t)} c^{(t - 1)} + i^{(t)} g^{(t)}" in tex
    # The vector form: weights times inputs, then the recurrent term, then the bias.
    assert r"\sigma(W_{ix} x^{(t)} + W_{ih} h^{(t - 1)} + b_{i})" in tex


def test_lstm_handout_writes_the_cell_as_the_key_does(problems) -> None:
    tex = key_tex(problems["lstm"], handout=True)
    assert r"\sigma(w_{ix} x^{(t)} + w_{ih} h^{(t - 1)})" in tex
    assert r"f^{(t)} c^{(t - 1)} + i^{(t)} g^{(t)}" in tex


@pytest.mark.parametrize("set_id", LSTM_SETS)
def test_adjoint_then_local_derivative_in_forward_order(bundled_keys: Path, set_id: str) -> None:
    tex = key(bundled_keys, set_id)
    assert r"&= \overline{h^{(t)}} o^{(t)} (1 - \tanh^{2}(c^{(t)}))" in tex
    vector = r"\overline{h^{(t)}} \odot o^{(t)} \odot (\mathbf{1} - (\tanh(c^{(t)}))^{\odot 2})"
    assert vector in tex


def test_printer_orders_by_the_written_equations() -> None:
    """The same expression prints in each model's own order, never in SymPy's."""
    c = timed("f") * timed("c", -1) + timed("i") * timed("g")
    lstm = Ordering(("f", "c", "i", "g"), ("i", "f", "g", "c"))
    swapped = Ordering(("i", "g", "f", "c"), ("i", "f", "g", "c"))
    assert KeyPrinter(ordering=lstm).doprint(c) == r"f^{(t)} c^{(t - 1)} + i^{(t)} g^{(t)}"
    assert KeyPrinter(ordering=swapped).doprint(c) == r"i^{(t)} g^{(t)} + f^{(t)} c^{(t - 1)}"
    # An adjoint leads; a gate stands beside its own derivative factor.
    h = bar("h") * timed("o") * (1 - sp.tanh(timed("c")) ** 2)
    out = KeyPrinter(ordering=Ordering(("o", "c"), ("o", "c", "h"))).doprint(h)
    assert out == r"\overline{h^{(t)}} o^{(t)} (1 - \tanh^{2}(c^{(t)}))"


def test_tall_brackets_only_around_tall_content() -> None:
    assert slim_brackets(r"\left(x^{(t)}\right)^{2}") == r"(x^{(t)})^{2}"
    assert slim_brackets(r"\left(\frac{a}{b}\right)") == r"\left(\frac{a}{b}\right)"
    # Tall inside makes the outer pair tall too; a plain pair inside a tall one is slimmed.
    assert slim_brackets(r"\left(1 + \left(\frac{a}{b}\right)\right)") == (
        r"\left(1 + \left(\frac{a}{b}\right)\right)"
    )
    assert slim_brackets(r"\left(\frac{a}{\left(b\right)}\right)") == (
        r"\left(\frac{a}{(b)}\right)"
    )
    assert slim_brackets(r"\left[\begin{matrix}1\end{matrix}\right]") == (
        r"\left[\begin{matrix}1\end{matrix}\right]"
    )


def test_a_decimal_power_needs_no_brackets() -> None:
    power = sp.UnevaluatedExpr(sp.Rational(2, 5)) ** 30
    assert KeyPrinter().doprint(power) == "0.4^{30}"
    assert KeyPrinter().doprint(sp.UnevaluatedExpr(sp.Rational(-2, 5)) ** 3) == "(-0.4)^{3}"


@pytest.mark.parametrize("set_id", sorted(bundled()))
def test_no_tall_brackets_around_one_symbol(bundled_keys: Path, set_id: str) -> None:
    tex = key(bundled_keys, set_id)
    assert SINGLE.findall(tex) == []
    assert SINGLE.search(r"\left(g^{(t + 1)}\right)^{2}")  # the pattern does find one


@pytest.mark.parametrize("set_id", sorted(bundled()))
def test_one_symbol_for_the_identity(bundled_keys: Path, set_id: str) -> None:
    # The prose writes I (I_D, I - alpha H): derived matrices use the same letter.
    assert "\\mathbb{I}" not in key(bundled_keys, set_id)


def test_the_momentum_jacobian_uses_the_prose_identity(bundled_keys: Path) -> None:
    tex = key(bundled_keys, "csc421_hw3")
    assert r"\begin{matrix}I - \alpha H & \beta I\\- \alpha H & \beta I\end{matrix}" in tex
    assert r"$[\,I - \alpha H,\ \beta I\,]$" in tex


@pytest.mark.parametrize("set_id", sorted(bundled()))
def test_the_vector_of_ones_is_defined_where_first_used(bundled_keys: Path, set_id: str) -> None:
    tex = key(bundled_keys, set_id)
    first = tex.find("\\mathbf{1}")
    if first >= 0:
        assert "vector of ones" in tex[: first + 80], tex[first - 200 : first + 80]


def test_counts_keep_k_squared_minus_one_whole(bundled_keys: Path) -> None:
    tex = key(bundled_keys, "cse891_hw3")
    assert r"\frac{(k^{2} - 1)^{2}}{32}" in tex and r"\frac{H k (k^{2} - 1)}{8}" in tex
    assert not re.search(r"k \+ 1(\\right\))? (\\left\()?\(?k - 1", tex)


def test_norm_bound_is_printed_as_derived(bundled_keys: Path) -> None:
    tex = key(bundled_keys, "lmu_ex5")
    assert r"\lVert W\rVert_2 < 4$" in tex
    assert "1/0.25" not in tex
