"""Output a reader can use (issue 10): ``symnet collapse`` and ``symnet grad`` in every format.

Every format carries the whole result; LaTeX is a fragment or, with ``--standalone``,
a document that compiles; Markdown puts ``aligned`` (never ``align*``) inside ``$$``;
plain text reads as a textbook would print it; numbers are judged by relative error;
``-o`` into a missing directory is one line and exit 2.
"""

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardProduct

from symnet import Network, collapse
from symnet.cli import main
from symnet.networks.composer import elementwise, matadd, matmul
from symnet.networks.losses import EXP, LOSSES, RECIPROCAL
from symnet.networks.numeric import Evaluator
from symnet.render.printing import abbreviate, latex, text, text_name

ROOT = Path(__file__).resolve().parent.parent
MIXED = ["--layers", "3,4,2", "--activations", "relu,identity"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. every format carries the whole result ------------------------------------------


def test_latex_of_a_nonlinear_network_is_not_empty(capsys):
    code, out, _ = run(capsys, "collapse", "--layers", "3,4,2", "--activation", "relu", "--format", "latex")
    assert code == 0 and out.strip()
    assert "Not collapsible" in out and "Witness" in out
    assert r"\mathbf{W}_{1} &= \begin{bmatrix}" in out and r"\mathbf{a} &= \begin{bmatrix}" in out


@pytest.mark.parametrize("fmt", ["text", "latex", "markdown"])
def test_mixed_network_keeps_note_segments_and_witness(capsys, fmt):
    code, out, _ = run(capsys, "collapse", *MIXED, "--format", fmt)
    assert code == 0
    assert "Not collapsible: nonlinear activation in layer 1 (relu)" in out
    assert "affine run, layer 2" in out
    w = collapse(Network.dense([3, 4, 2], ["relu", "identity"])).witness
    first = f"{w.weights['W1'][0, 0]:.4g}" if fmt != "text" else f"{w.weights['W1'][0, 0]:.4f}".rstrip("0")
    assert first in out  # the weights themselves, not a pointer to the JSON
    names = ("W1", "b2") if fmt == "text" else (r"\mathbf{W}_{1} &=", r"\mathbf{b}_{2} &=")
    assert all(n in out for n in names) and "JSON output" not in out


def test_json_carries_notes_segments_witness(capsys):
    code, out, _ = run(capsys, "collapse", *MIXED, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["notes"] and data["segments"][0]["layers"] == [2, 2]
    assert set(data["witness"]["weights"]) == {"W1", "b1", "W2", "b2"}
    assert data["witness"]["input_a"] and data["witness"]["input_b"]


def test_jupyter_latex_of_a_nonlinear_collapse_is_not_empty():
    shown = collapse(Network.dense([3, 4, 2], "relu"))._repr_latex_()
    assert shown.strip() not in ("", "$$$$") and "aligned" in shown and "align*" not in shown


# -- 2. a fragment by default, a document with --standalone ------------------------------

DOCUMENTS = [
    ["collapse", "--layers", "3,4,4,2"],
    ["collapse", *MIXED, "--general"],
    ["collapse", "--layers", "2,2,1", "--entries"],
    ["grad", "--layers", "2,3,3", "--activation", "tanh", "--loss", "xent", "--at", "0"],
]


@pytest.mark.parametrize("argv", DOCUMENTS, ids=[" ".join(a) for a in DOCUMENTS])
def test_latex_fragment_by_default_document_with_standalone(capsys, tmp_path, argv):
    code, fragment, _ = run(capsys, *argv, "--format", "latex")
    assert code == 0 and "\\documentclass" not in fragment and "\\begin{align*}" in fragment
    target = tmp_path / "doc.tex"
    code, out, _ = run(capsys, *argv, "--format", "latex", "--standalone", "-o", str(target))
    doc = target.read_text()
    assert code == 0 and out == ""
    assert doc.startswith("\\documentclass") and doc.rstrip().endswith("\\end{document}")
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed: the document was written but not compiled")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", target.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


@pytest.mark.parametrize("command", ["collapse", "grad"])
def test_standalone_needs_latex(capsys, command):
    code, out, err = run(capsys, command, "--layers", "2,2", "--standalone")
    assert code == 2 and out == "" and "--standalone" in err and len(err.strip().splitlines()) == 1


# -- 3. Markdown: aligned inside $$ -----------------------------------------------------


def _display_blocks(md: str) -> list[str]:
    return re.findall(r"^\$\$\n(.*?)^\$\$", md, re.S | re.M)


@pytest.mark.parametrize("argv", [
    ["collapse", "--layers", "2,2,1", "--entries", "--general"],
    ["collapse", *MIXED],
    ["grad", "--layers", "2,3,2", "--activation", "tanh", "--loss", "xent", "--at", "0"],
])
def test_markdown_display_math_uses_aligned(capsys, argv):
    code, out, _ = run(capsys, *argv, "--format", "markdown")
    assert code == 0
    assert "align*" not in out
    blocks = _display_blocks(out)
    assert blocks and all(b.startswith("\\begin{aligned}") for b in blocks)


# -- 4. text a textbook would print -----------------------------------------------------


def test_xent_gradient_prints_with_softmax(capsys):
    code, out, _ = run(capsys, "grad", "--layers", "2,3", "--loss", "xent")
    assert code == 0
    assert "dL/dy = sum(t) softmax(y) - t" in out
    assert "softmax(y) - t when the entries of t sum to 1" in out  # the reading, with its assumption
    assert "log'" not in out.split("Gradient of the loss")[1].split("\n\n")[0]


def test_softmax_notation_is_the_checked_expression():
    """The notation stands for the very expression the kernel checked, for any t (not only
    sum(t) = 1), and is not used for look-alikes."""
    y, t = sp.MatrixSymbol("y", 1, 3), sp.MatrixSymbol("t", 1, 3)
    g = LOSSES["xent"].gradient(y, t)
    assert text(g) == "sum(t) softmax(y) - t"
    assert r"\operatorname{softmax}" in latex(g)
    rng = np.random.default_rng(0)
    yv, tv = rng.standard_normal((1, 3)), rng.random((1, 3)) * 3  # t does not sum to 1
    got = Evaluator({y: yv, t: tv}, {}, {})(g)
    soft = np.exp(yv) / np.exp(yv).sum()
    assert np.allclose(got, tv.sum() * soft - tv)
    # a look-alike (different vectors in the two exponentials) keeps its own form
    u = sp.MatrixSymbol("u", 1, 3)
    ones = sp.OneMatrix(3, 3)
    other = HadamardProduct(matmul(HadamardProduct(t, elementwise(RECIPROCAL, matmul(elementwise(EXP, u), ones))),
                                   ones), elementwise(EXP, y))
    assert "softmax" not in text(matadd(other, -t))


def test_ones_min_and_names_in_plain_text(capsys):
    result = collapse(Network.dense([2, 3, 2], "affine(a=2, c=1)"))
    assert "ones(1, 2)" in text(result.b) and not re.search(r"[^(,\w]1$", text(result.b))
    code, out, _ = run(capsys, "collapse", "--layers", "n0,n1,n2")
    assert "min(n0, n1, n2)" in out and "Min(" not in out
    code, out, _ = run(capsys, "collapse", "--layers", "2,2,2", "--style", "induction")
    assert "W'_1" in out and "{" not in out
    assert text_name("W'_{1}") == "W'_1" and text_name("b'_{2..3}") == "b'_(2..3)"


def test_deep_collapse_summary_is_abbreviated(capsys):
    result = collapse(Network.dense([3] * 61))
    assert abbreviate(result.W) == "W1 W2 ... W60"
    assert abbreviate(result.b).endswith("+ ... + b60 (60 terms)")
    out = result.to_text()
    assert max(len(line) for line in out.splitlines()) < 400
    assert "W2 W3 W4" in result.to_dict()["W"].replace("*", " ")  # the full form stays in JSON


def test_readme_sample_is_what_the_command_prints(capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What `symnet collapse` prints", 1)[1]
    sample = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    code, out, _ = run(capsys, "collapse", "--layers", "3,4,4,2")
    assert code == 0 and out == sample


# -- 5. no internal claim ids -----------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["collapse", *MIXED], ["collapse", "--layers", "3,4,4,2"],
    ["grad", "--layers", "2,3,1", "--activation", "tanh", "--at", "0"],
])
@pytest.mark.parametrize("fmt", ["text", "latex", "markdown"])
def test_no_claim_ids_in_user_output(capsys, argv, fmt):
    code, out, _ = run(capsys, *argv, "--format", fmt)
    assert code == 0 and not re.search(r"\bC\d+\b", out)


# -- 6. relative error ------------------------------------------------------------------


def test_deep_collapse_reports_and_judges_relative_error(capsys):
    code, out, _ = run(capsys, "collapse", "--layers", ",".join(["10"] * 101), "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["numeric"]["ok"] and data["numeric"]["max_rel_error"] < 1e-8
    result = collapse(Network.dense([3, 4, 2]))
    assert "max relative error" in result.to_text() and "max abs error" not in result.to_text()
    broken = replace(result, numeric_max_rel_error=1e-3)
    assert not broken.ok and "FAILED" in broken.to_text()


# -- 7. CLI: --output-activation, -o into a missing directory ---------------------------


def test_output_activation(capsys):
    code, out, _ = run(capsys, "collapse", "--layers", "2,3,3,2", "--activation", "relu",
                       "--output-activation", "identity", "--format", "json")
    assert code == 0 and json.loads(out)["network"]["activations"] == ["relu", "relu", "identity"]
    code, out, _ = run(capsys, "grad", "--layers", "2,3,2", "--activation", "tanh",
                       "--output-activation", "identity", "--format", "json")
    assert code == 0 and json.loads(out)["network"]["activations"] == ["tanh", "identity"]
    code, out, err = run(capsys, "grad", "--layers", "2,3,2", "--activations", "tanh,tanh",
                         "--output-activation", "identity")
    assert code == 2 and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["collapse", "grad"])
def test_output_into_a_missing_directory_is_refused(capsys, tmp_path, command):
    target = tmp_path / "missing" / "x.txt"
    code, out, err = run(capsys, command, "--layers", "2,2", "-o", str(target))
    assert code == 2 and out == ""
    assert err.startswith("symnet: error:") and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not target.parent.exists()
