"""Rich displays (symnet.render.display): Jupyter HTML/Markdown/LaTeX with verdict marks, short reprs."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import sympy as sp

from symnet import Context, Network, gradients
from symnet.notes.checkfile import check_text
from symnet.notes.derivation import ChainBuilder, Derivation
from symnet.render.display import reason_latex

VOID = {"br", "hr", "img", "input", "meta", "link", "col", "wbr"}


class _Balanced(HTMLParser):
    """Fails on a closing tag that does not match the open one, or tags left open."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def well_formed(html: str) -> str:
    parser = _Balanced()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"left open: {parser.stack}"
    return "".join(parser.text)


def math_blocks(latex: str) -> list[str]:
    """The ``$$...$$`` blocks of a LaTeX output."""
    return re.findall(r"\$\$(.*?)\$\$", latex, re.S)


@pytest.fixture(scope="module")
def backprop():
    return gradients(Network.dense([2, 3, 1], "tanh"))


def refuted_derivation() -> Derivation:
    A, B = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("B", 2, 2)
    b = ChainBuilder(Context(), A * B, "A product")
    b.step(B * A, "commutativity <wrong> & more")
    return Derivation("Swapped <factors>", (b.build(),))


def test_gradient_latex_stacks_chains_vertically(backprop):
    d = backprop.derivation
    assert len(d.chains) == 8
    latex = d._repr_latex_()
    blocks = [b for b in math_blocks(latex) if r"\begin{aligned}" in b]
    # one aligned block per chain, each in its own $$ (never side by side in one $$)
    assert len(blocks) == 8
    assert all(b.count(r"\begin{aligned}") == 1 for b in blocks)
    assert latex.count(r"\checkmark") == 8
    assert "align*" not in latex


def test_loss_is_not_bold(backprop):
    latex = backprop.derivation._repr_latex_()
    assert r"\mathbf{L}" not in latex and r"\frac{\partial L}" in latex


def test_derivation_html_and_markdown(backprop):
    d = backprop.derivation
    text = well_formed(d._repr_html_())
    assert text.count("✓") >= 9 and "Gradient for W1" in text
    md = d._repr_markdown_()
    assert "align*" not in md and md.count(r"\begin{aligned}") == 8 and "✓" in md
    assert repr(d) == "<Derivation 'Backpropagation (sse)': 8 chains, 8 steps, ✓ proved>"


def test_refuted_step_shows_mark_and_counterexample():
    d = refuted_derivation()
    html = d._repr_html_()
    text = well_formed(html)
    assert "✗" in text and "counterexample" in text and "<wrong>" in text  # escaped, shown
    assert "<wrong>" not in html
    latex = d._repr_latex_()
    assert r"\boldsymbol{\times}" in latex and r"\begin{bmatrix}" in latex and "counterexample" in latex
    assert "✗" in d._repr_markdown_()
    assert "refuted" in repr(d)


def test_file_result_displays():
    ok = check_text("matrix A: 2 x 3, B: 3 x 2\n(A*B).T\n= B.T*A.T   by transpose of a product\n", "t.deriv")
    bad = check_text("matrix A: 2 x 2, B: 2 x 2\nA*B\n= B*A   by commutativity\n", "b.deriv")
    broken = check_text("matrix A: 2 x 2\nA +\n", "m.deriv")
    assert repr(ok) == "<FileResult t.deriv: 1 step, ✓ proved>"
    assert repr(bad) == "<FileResult b.deriv: 1 step, ✗ refuted>"
    assert "malformed" in repr(broken)
    for r in (ok, bad, broken):
        well_formed(r._repr_html_())
        assert "align*" not in r._repr_markdown_()
    assert "✗" in well_formed(bad._repr_html_()) and "counterexample" in bad._repr_html_()
    assert "The only step proved" in ok._repr_markdown_()
    assert r"\begin{bmatrix}" in bad._repr_latex_()
    assert "✓" in well_formed(ok._repr_html_())


def test_conditions_are_shown():
    r = check_text("scalar u\nu/u\n= 1   by cancelling\n", "c.deriv")
    (step,) = r.steps
    if not step.conditions:
        pytest.skip("this kernel proves u/u = 1 without a side condition")
    assert step.shown in well_formed(r._repr_html_())
    assert step.shown in r._repr_markdown_()


def test_gradcheck_and_network_displays(backprop):
    report = backprop.check()
    assert repr(report).startswith("<GradCheckReport ✓ passed:")
    assert "✓" in well_formed(report._repr_html_())
    assert "✓" in report._repr_markdown_() and r"\checkmark" in report._repr_latex_()
    net = backprop.net
    assert repr(net) == "Network.dense([2,3,1], [tanh,tanh])"
    assert "W2: 3 x 1" in well_formed(net._repr_html_())
    assert r"\mathbb{R}^{2 \times 3}" in net._repr_latex_()
    assert "$$" in net._repr_markdown_()


def test_helpers_for_other_results(backprop):
    from symnet import collapse
    from symnet.render import display

    assert "✓" in well_formed(display.gradients_html(backprop))
    assert len(math_blocks(display.gradients_latex(backprop))) >= 8
    assert display.gradients_repr(backprop).startswith("<Gradients of the sse loss")
    result = collapse(Network.dense([2, 3, 1], ["tanh", "identity"]))
    html = display.collapse_html(result)
    assert "Not collapsible" in well_formed(html)
    assert result.witness is not None
    w = display.witness_html(result.witness)
    assert "W1" in well_formed(w) and "differ by" in w
    assert r"\mathbf{W}_{1}" in display.witness_latex(result.witness)
    assert "| `W1` |" in display.witness_markdown(result.witness)
    assert display.witness_repr(result.witness).startswith("<Witness:")
    assert "not collapsible" in display.collapse_repr(result)
    assert "Not collapsible" in display.collapse_latex(result)
    lin = collapse(Network.dense([2, 3, 1], "identity"))
    assert "Collapsible" in well_formed(display.collapse_html(lin))


def test_reasons_typeset_math():
    names = {"h1": r"\mathbf{h}_{1}"}
    out = reason_latex("definition of W'_{1..2}, b'_{1..2}", {})
    assert r"\{" not in out and r"\_" not in out and "W'_{1..2}" in out
    out = reason_latex("definition of h1, f(z) = a z + c", names)
    assert r"\mathbf{h}_{1}" in out and r"\text{definition of }" in out
    assert r"\text{f(z)" not in out and "f(z) = a z + c" in out
    assert reason_latex("distributivity", {}) == r"\text{distributivity}"
    assert reason_latex("by $x^2$", {}) == r"\text{by }x^2"
