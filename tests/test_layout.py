"""Nothing leaves the text block: no overfull box over 1 pt in any key or handout.

LaTeX compiles, as ``derive build`` runs it (``render.pdf.typeset_with_log``), every bundled
set's key in each form and its handout, the README's set, and one document holding every
problem at the extremes of its parameters (long sums and products, wide matrices, many
steps, long layer lists); the test fails on any ``Overfull \\hbox`` wider than 1 pt and
prints the source lines it came from.  Each set is one test, so that test workers share
them out.  The rules that break formulas (``render.breaks``) are tested on their own
below, without LaTeX.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from derive.build import make_problems
from derive.problems import REGISTRY
from derive.render import breaks
from derive.render.document import environment, render, render_page, render_problem
from derive.render.forms import FORMS
from derive.render.latex import Notation
from derive.render.pdf import find_engine, overfull_boxes, typeset_with_log
from derive.sets import ProblemSet, bundled, get_set, parse_set

README = Path(__file__).resolve().parents[1] / "README.md"
#: Set files that define their own cells.
MODELS = Path(__file__).resolve().parent / "models"
#: Overfull boxes up to this many points are TeX's rounding, not a formula in the margin.
LIMIT_PT = 1.0

#: Every problem at the extremes of its parameters (README's table, each ``PARAMS``), chosen
#: to make its output wide: problems may appear more than once.
_X = ["1.5", "-0.25", "2", "0.125", "-1.5", "1", "0.5", "-0.5", "2", "1", "-1", "0.75",
      "1.25", "-2", "0.3", "0.7", "-0.9", "1.1", "2.2", "-1.7"]  # T = 20, the most allowed
_DL_DH = ["1", "0", "-2", "1", "1", "-1", "0.5", "2", "-3", "1", "1", "0", "0", "1", "2", "-1",
          "1", "0.5", "-0.5", "3"]
EXTREMES: list[tuple[str, dict]] = [
    # The longest fractions dropout prints, and init's largest fans (long surds).
    ("dropout", {"p": "997/999", "n": 12}),
    ("init", {"n_in": 4093, "n_out": 4091}),
    # The largest layer a set may give: long index sums, wide shape tables.
    ("conv_pool", {"input_shape": [4, 4, 16, 16], "filter_shape": [8, 7, 7], "stride": 1,
                   "pad": 3, "pool": [4, 4, 4]}),
    # Entries of 10^6 with denominators near 10^6 and irrational eigenvalues: long surds in
    # Q, Lambda, Q^-1, the regimes' eigenvalues; n = 200, the largest power.
    ("eigen_power", {"W": [["999999/1000000", "1000000"], ["999997/1000000", "-999998/999983"]],
                     "n": 200}),
    # Rational eigenvalues, long fractions.
    ("eigen_power", {"W": [["-999999/1000000", "1000000"], ["0", "999998/999999"]], "n": 200}),
    # The most bits, a 32-bit example (33 steps in the example's tables), and wrong stated
    # weights of 10^6 with denominators 10^6 (one denominator: distinct ones overflow the
    # simulation's int64, a bug of its own).
    ("binary_adder", {"bits": 10, "example": [2**32 - 1, 2**32 - 2], "given_weights": {
        "U": [["999999/1000000", "-999998/1000000"], ["-1000000", "999997/1000000"], ["1", "1"]],
        "W": [["-999999/1000000", "1000000", "-1/1000000"], ["0", "1", "0"],
              ["999999/1000000", "-999999/1000000", "999999/1000000"]],
        "b_h": ["-999999/1000000", "-1.5", "-999999/1000000"],
        "V": ["1000000", "-999999/1000000", "1"], "b_y": "-999999/1000000"}}),
    ("cnn_params", {
        "input_shape": [1024, 1024, 3],
        "layers": ["conv5x5-32/p2/s1/nobias", "conv3-64", "maxpool2", "conv3-128", "conv3-128",
                   "maxpool2", "conv3-256", "conv3-256", "conv3-256", "maxpool2", "conv3-512",
                   "conv3-512", "conv3-512", "maxpool2", "conv3-512", "conv3-512", "conv3-512",
                   "maxpool2", "avgpool3/s2", "flatten", "fc-4096", "relu", "fc-4096", "relu",
                   "fc-1000", "softmax"]}),
    # The largest sizes: a long name, long products and counts widen the table.
    ("cnn_params", {
        "input_shape": [16384, 16384, 3],
        "layers": ["conv255x253-3000/p255/s1/nobias", "maxpool256/p128/s255", "flatten",
                   "fc-1048576", "fc-1048575", "softmax"]}),
    ("mdrnn", {"grid": 12}),
    # Ten depths, the most allowed, up to 64 (narrow and small batches: fast).
    ("resnet_bn", {"width": 8, "batch": 32, "depths": [1, 2, 3, 4, 6, 8, 12, 16, 32, 64]}),
    ("momentum", {"alpha": "0.499999", "beta": "0.987654", "volume_D": 5000}),
    # T = 8, the largest: T(T+1)/2 = 36 products of up to 8 Jacobians.
    ("vanilla_rnn", {"T": 8}),
    ("pixelcnn_mdrnn", {"image": [16, 16], "layers": 8, "kernel": 7,
                        "example": {"H": 10000, "W": 10000, "d": 8, "k": 7, "c": 10000}}),
    ("lstm", {"example": {
        "x": _X, "h0": "-0.123456", "c0": "0.987654", "dL_dh": _DL_DH,
        "weights": {"w_ix": "-1.345678", "w_ih": "-0.312345", "w_fx": "1.000001",
                    "w_fh": "1/4", "w_ox": "-0.2", "w_oh": "0.7", "w_gx": "0.9", "w_gh": "-0.6"}}}),
    ("gru", {"example": {
        "x": _X, "h0": "-0.123456", "dL_dh": _DL_DH,
        "weights": {"w_zx": "-1.345678", "w_zh": "-0.312345", "w_rx": "1.000001",
                    "w_rh": "1/4", "w_nx": "-0.2", "w_nh": "0.7"}}}),
    ("mgu", {}),
    ("lstm_cell", {}),
]


def readme_set() -> ProblemSet:
    block = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return parse_set(block.group(1), "README.md")


#: The extremes are derived in this many groups (deriving them all takes half a minute).
EXTREME_CHUNKS = 2
#: Each group of documents one test compiles: a bundled set (its key in each form and its
#: handout), the README's set, a set file of tests/models (key and handout), the extremes.
GROUPS = ([f"set {sid}" for sid in bundled()] + ["readme"]
          + [f"model {p.relative_to(MODELS).as_posix()}" for p in sorted(MODELS.rglob("*.toml"))]
          + [f"extremes {k}" for k in range(EXTREME_CHUNKS)])


#: Problems of the bundled sets derived in this worker, shared by the groups it runs (a
#: set file's own models may reuse a bundled problem's key, so they are not kept here).
_DERIVED: dict = {}


def _documents(group: str) -> dict[str, str]:
    """The documents of one group, by name."""
    kind, _, name = group.partition(" ")
    if kind == "extremes":
        return _extreme_documents(EXTREMES[int(name)::EXTREME_CHUNKS])
    if kind == "model":
        pset = get_set(str(MODELS / name))
        problems = make_problems(pset, {})
        return {f"{name} key": render(pset, problems),
                f"{name} handout": render(pset, problems, handout=True)}
    pset = readme_set() if kind == "readme" else bundled()[name]
    problems = make_problems(pset, {} if kind == "readme" else _DERIVED)
    docs = {f"{group} key ({form_name})": render(dataclasses.replace(pset, form=form), problems)
            for form_name, form in FORMS.items()}
    docs[f"{group} handout"] = render(pset, problems, handout=True)
    return docs


def _extreme_documents(extremes: list[tuple[str, dict]]) -> dict[str, str]:
    """One document per form holding the ``extremes``' instances, and one handout of
    them."""
    pset = ProblemSet("extremes", "Extremes", "Course", "test", tuple(REGISTRY), Notation())
    env = environment(pset.notation)
    instances = [REGISTRY[key].from_params(params) for key, params in extremes]
    docs = {}
    for name, form in FORMS.items():
        shaped = dataclasses.replace(pset, form=form)
        body = [render_problem(shaped, p, k, env=env) for k, p in enumerate(instances, 1)]
        docs[f"extremes key ({name})"] = render_page(shaped, body, env=env)
    body = [render_problem(pset, p, k, handout=True, env=env) for k, p in enumerate(instances, 1)]
    docs["extremes handout"] = render_page(pset, body, handout=True, env=env)
    return docs


def _report(name: str, tex: str, log: str) -> list[str]:
    """One paragraph per overfull box of ``log``: its width, where, the source lines."""
    source = tex.splitlines()
    out = []
    for box in overfull_boxes(log, LIMIT_PT):
        first, last = box.lines
        # A display is reported at its last line: show the lines before it too.
        first, last = (first - 3, last) if first == last else (first, min(last, first + 8))
        shown = "\n".join(f"    {k:5d}: {source[k - 1][:160]}" for k in range(
            max(1, first), min(len(source), last) + 1))
        out.append(f"{name}: {box.points:.1f} pt too wide, {box.where}\n    {box.content[:160]}"
                   f"\n{shown}")
    return out


def test_every_bundled_set_and_model_file_is_a_group():
    assert sum(g.startswith("set ") for g in GROUPS) == len(bundled())
    assert sum(g.startswith("model ") for g in GROUPS) == len(list(MODELS.rglob("*.toml")))
    assert {key for key, _ in EXTREMES} == set(REGISTRY)  # every problem is stressed


@pytest.mark.pdf
@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_every_document_stays_in_the_text_block(group):
    """Each of the group's documents compiles with no overfull box over ``LIMIT_PT`` (a
    bundled set gives three forms of its key and a handout, a model file a key and a
    handout)."""
    if find_engine() is None:
        pytest.skip("no LaTeX engine (latexmk and pdflatex)")
    docs = _documents(group)
    assert len(docs) == (2 if group.startswith("model ") else 1 + len(FORMS))
    found = [line for name, tex in docs.items()
             for line in _report(name, tex, typeset_with_log(tex)[1])]
    assert not found, "\n".join(found)


# -- the rules, without LaTeX ------------------------------------------------------------------
_FACTOR = r"\operatorname{diag}\left({\sigma'}^{(3)}\right) W"


def test_overfull_boxes_are_read_from_the_log():
    log = ("Overfull \\hbox (12.3pt too wide) in paragraph at lines 82--92\n[] \\OML/cmm x\n\n"
           "Overfull \\hbox (0.4pt too wide) detected at line 7\n[]\n\n"
           "Overfull \\hbox (128.6pt too wide) in alignment at lines 5--9\n[]\n")
    boxes = overfull_boxes(log, LIMIT_PT)
    assert [(b.points, b.lines) for b in boxes] == [(12.3, (82, 92)), (128.6, (5, 9))]
    assert boxes[0].content == "[] \\OML/cmm x"


def test_sums_split_at_top_level_signs_only():
    latex = r"- a + \frac{b - c}{d} - \left(x + y\right) z"
    assert breaks.terms(latex) == ["- a", r"+ \frac{b - c}{d}", r"- \left(x + y\right) z"]
    assert breaks.terms(r"\left[\begin{matrix}1 & -2\end{matrix}\right]") == [
        r"\left[\begin{matrix}1 & -2\end{matrix}\right]"]


def test_plain_brackets_are_never_split():
    """The printer writes (1 - i) with plain brackets: a cut inside one printed "(1" on one
    line and "- i)" on the next."""
    term = r"i^{(t + 1)} (1 - i^{(t + 1)}) g^{(t + 1)} w_{ih}"
    assert breaks.factors(term) == ["i^{(t + 1)}", "(1 - i^{(t + 1)})", "g^{(t + 1)}", "w_{ih}"]
    assert breaks.terms(r"a (1 - i) + [b - c] - d") == ["a (1 - i)", "+ [b - c]", "- d"]


def test_products_split_between_factors_keeping_signs_and_operators():
    term = r"- \frac{\partial \ell}{\partial h} " + _FACTOR + r" \sum_{k} x_{k} \cdot y"
    assert breaks.factors(term) == [
        r"- \frac{\partial \ell}{\partial h}", r"\operatorname{diag}\left({\sigma'}^{(3)}\right)",
        "W", r"\sum_{k} x_{k} \cdot y"]


def test_a_short_sum_stays_on_one_line_and_a_long_one_breaks_where_needed():
    assert breaks.rows("L", "a + b") == "L &= a + b"
    long = " + ".join([r"\frac{\partial \ell^{(%d)}}{\partial h^{(%d)}}" % (k, k)
                       for k in range(40)])
    out = breaks.rows("L", long).split(" \\\\\n")
    assert 1 < len(out) < 40 and out[0].startswith("L &= ")
    assert all(row.startswith(r"&\quad + ") for row in out[1:])
    assert all(breaks.width(row) <= breaks.SAFE * breaks.LINE_EM for row in out)


def test_a_product_too_long_for_a_line_breaks_between_factors_on_lines_of_its_own():
    product = " ".join([_FACTOR] * 16)
    out = breaks.rows("L", f"a + {product} + b").split(" \\\\\n")
    assert out[0] == "L &= a" and out[-1] == r"&\quad + b"
    assert out[1].startswith(r"&\quad + \operatorname{diag}")
    assert len(out) > 3 and all(row.startswith("&\\qquad ") for row in out[2:-1])
    assert " ".join(row.split(" ", 1)[1] for row in out[1:-1]) == f"+ {product}"


def test_broken_lines_are_balanced():
    # Greedy filling would leave one term alone on the last line; balanced lines hold
    # about as much each.
    term = r"\frac{\partial \ell_{3}}{\partial h_{3}} \frac{\partial h_{3}}{\partial h_{2}}"
    out = breaks.rows("L", " + ".join([term] * 11)).split(" \\\\\n")
    assert len(out) == 2 and abs(out[0].count("ell") - out[1].count("ell")) <= 1


def test_widths_grow_with_content_and_fractions_shrink_inline():
    frac = r"\frac{123456789}{987654321}"
    assert breaks.width("a + b") < breaks.width("a + b + c")
    assert breaks.width(frac, display=False) < breaks.width(frac)
    matrix = r"\left[\begin{matrix}1 & 2\\3 & 4\end{matrix}\right]"
    assert breaks.width(matrix) < breaks.width(matrix.replace("1 &", "123456789 &"))


def test_wide_tables_are_cut_into_equal_blocks_of_columns():
    assert breaks.blocks(list(range(5)), 1.5, 3) == [list(range(5))]
    parts = breaks.blocks(list(range(33)), 1.5, 3)
    assert [len(p) for p in parts] == [11, 11, 11]
    assert [k for p in parts for k in p] == list(range(33))


def test_powers_bracket_all_but_plain_numbers_and_letters():
    assert breaks.power_base("0.9") == "0.9" and breaks.power_base(r"\lambda") == r"\lambda"
    assert breaks.power_base(r"\frac{3}{4}") == r"\left(\frac{3}{4}\right)"
    assert breaks.power_base("-2") == r"\left(-2\right)"


def test_tables_fit_at_natural_widths_until_their_cells_are_too_long():
    row = r"1 & \texttt{conv3-64} & $32 \times 32 \times 3$ \\" + "\n"
    assert breaks.table_fits(row * 5, 0.91)
    wide = r"1 & \texttt{conv255x253-3000/p255/s1/nobias} & $16640 \times 16642 \times 3000$"
    wide += r" & $13068000 \cdot 1048576 + 1048576$ & 13,702,792,216,576 \\"
    assert not breaks.table_fits(wide, 0.91)  # 35 pt too wide at natural widths
