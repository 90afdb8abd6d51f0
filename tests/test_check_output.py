"""``symnet check`` output (-o, --format latex/markdown, --standalone), missing output
directories, and the LaTeX of ``check`` and ``proofs build``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import sympy as sp

from symnet.cli import main

HERE = Path(__file__).resolve().parent
GOOD = HERE / "deriv" / "good" / "layers.deriv"
REFUTED = HERE / "deriv" / "refuted" / "swapped_factors.deriv"
PDFLATEX = shutil.which("pdflatex")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_latex_is_a_fragment_by_default_and_a_document_with_standalone(capsys):
    code, out, _ = run(capsys, "check", "--format", "latex", str(GOOD))
    assert code == 0
    assert "\\documentclass" not in out and "\\begin{document}" not in out
    assert "\\begin{align*}" in out and "\\section*" in out
    code, doc, _ = run(capsys, "check", "--format", "latex", "--standalone", str(GOOD))
    assert code == 0 and doc.startswith("\\documentclass") and doc.rstrip().endswith("\\end{document}")
    assert run(capsys, "check", "--standalone", str(GOOD))[0] == 2


def test_output_file_and_markdown(capsys, tmp_path):
    md = tmp_path / "report.md"
    code, out, _ = run(capsys, "check", "--format", "markdown", "-o", str(md), str(GOOD), str(REFUTED))
    assert code == 1 and out == ""
    text = md.read_text()
    assert "align*" not in text
    blocks = re.findall(r"\$\$(.*?)\$\$", text, re.S)
    assert blocks and all(b.strip().startswith("\\begin{aligned}") for b in blocks)
    assert "✗" in text and "✓" in text and "counterexample" in text.lower()
    txt = tmp_path / "report.txt"
    assert run(capsys, "check", "-o", str(txt), str(GOOD))[0] == 0
    assert "all proved" in txt.read_text()


@pytest.mark.parametrize("option", ["-o", "--latex", "--pdf"])
def test_check_refuses_a_missing_output_directory(capsys, tmp_path, option):
    target = tmp_path / "missing" / "out.x"
    code, out, err = run(capsys, "check", option, str(target), str(GOOD))
    assert code == 2
    assert err.count("\n") == 1 and str(tmp_path / "missing") in err and "does not exist" in err
    assert not (tmp_path / "missing").exists() and out == ""


@pytest.mark.parametrize("option", ["--tex", "--pdf"])
def test_proofs_build_refuses_a_missing_output_directory(capsys, tmp_path, option):
    target = tmp_path / "missing" / "book.x"
    code, _, err = run(capsys, "proofs", "build", option, str(target))
    assert code == 2 and str(tmp_path / "missing") in err and err.count("\n") == 1
    assert not (tmp_path / "missing").exists()


def test_check_latex_reads_well(capsys, tmp_path):
    one = tmp_path / "one.deriv"
    one.write_text("matrix A: 2 x 3, B: 3 x 2\n(A*B).T\n= B.T*A.T   by transpose of a product\n")
    code, out, _ = run(capsys, "check", "--format", "latex", str(one), str(REFUTED))
    assert code == 1
    assert "All 1 steps" not in out and "The only step proved" in out
    assert "\\checkmark" in out and "\\boldsymbol{\\times}" in out
    assert "counterexample" in out and "\\begin{bmatrix}" in out  # the refuted step's instance


def test_reasons_with_names_are_math(capsys, tmp_path):
    f = tmp_path / "w.deriv"
    f.write_text("matrix x: 1 x 2, W1: 2 x 2, h1: 1 x 2\ndefine h1 = x*W1\n"
                 "h1\n= x*W1   by definition of h1\n")
    code, out, _ = run(capsys, "check", "--format", "latex", str(f))
    assert code == 0
    assert "\\text{definition of }\\mathbf{h}_{1}" in out


# ---------------------------------------------------------------------------
# the book


def _refuted_item():
    from symnet.kernel import Context
    from symnet.notes.derivation import ChainBuilder, Derivation
    from symnet.notes.proofs import derivation_item

    A, B = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("B", 2, 2)
    b = ChainBuilder(Context(), A * B)
    b.step(B * A, "commutativity")
    return derivation_item(Derivation("Swapped", (b.build(),)))


def test_book_shows_counterexamples_and_keeps_where_blocks():
    item = _refuted_item()
    assert not item.ok
    assert "counterexample" in item.latex and "\\begin{bmatrix}" in item.latex
    assert "\\boldsymbol{\\times}" in item.latex


def test_book_latex(tmp_path):
    from symnet import Network, gradients
    from symnet.notes.proofs import Report, derivation_item, markup_latex, report_latex

    g = gradients(Network.dense([2, 3, 1], "tanh"))
    item = derivation_item(g.derivation)
    assert "\\mathbf{L}" not in item.latex and "Network.dense" not in item.latex
    assert "2-3-1 dense network with tanh activations" in item.latex
    # the chain and its where block stay on one page
    assert "\\begin{minipage}" in item.latex and "where" in item.latex
    assert "Network.dense" not in markup_latex("a Network.dense([2, 2, 1], [step, step]) network")
    doc = report_latex(Report("proofs", []))
    assert "CLAIMS.md" not in doc


def test_book_singular_summary():
    from symnet.kernel import Context
    from symnet.notes.proofs import Section

    A = sp.MatrixSymbol("A", 2, 3)
    s = Section("C1", "t", "s")
    s.prove("one step", A.T.T, [(A, "transpose twice")], Context())
    assert "All 1 step" not in s.items[0].latex and "The only step proved" in s.items[0].latex


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex not installed")
def test_check_pdf_with_a_refuted_step(capsys, tmp_path):
    pdf = tmp_path / "r.pdf"
    code, _, err = run(capsys, "check", "--pdf", str(pdf), str(GOOD), str(REFUTED))
    assert code == 1, err
    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        import subprocess

        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "counterexample" in text
