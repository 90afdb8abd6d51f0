"""What ``symnet activations`` shows: Markdown math, SELU's named constants, plots.

- ``--format markdown``: formulas are ``$...$`` math, not code spans; nothing in a math
  span ends the table cell (``|``) or is eaten by Markdown (``\\\\``).
- SELU is ``λα(e^z - 1)`` / ``\\lambda\\alpha \\left(e^{z} - 1\\right)``, its constants named
  and their values listed once.
- ``--plot DIR``: png, svg or pdf, a dpi and a size; jumps drawn with open and closed dots
  and no vertical segment; readable, portable file names; a missing DIR is one line, exit 2.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import sympy as sp

from symnet.cli import activations as C
from symnet.cli import main
from symnet.networks import properties as P
from symnet.networks.activations import SELU_ALPHA, SELU_LAMBDA, Z, names, parse_spec

LAMBDA_DIGITS = "1.0507009873554804934193349852946"
ALPHA_DIGITS = "1.6732632423543772848170429916717"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["activations", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------
# Markdown


def _table_rows(out: str) -> list[list[str]]:
    rows = []
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| name"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            rows.append([c.strip() for c in cells])
    return rows


def test_markdown_formulas_are_math_not_code(capsys):
    code, out, _ = _run(capsys, "--format", "markdown")
    assert code == 0
    rows = _table_rows(out)
    assert len(rows) == len(names()) + 1  # every scalar record and softmax
    for row in rows:
        assert len(row) == 11, row  # no cell split by a | inside math
        for cell in row[1:4]:
            assert "`" not in cell, cell
            assert cell == "-" or (cell.startswith("$") and "$" in cell[1:]), cell
            for math in re.findall(r"\$([^$]*)\$", cell):
                assert "\\\\" not in math and "|" not in math, math  # Markdown would eat or split them
                assert "\\begin" not in math, math


def test_markdown_piecewise_is_one_line_of_math_and_words(capsys):
    _, out, _ = _run(capsys, "relu", "hard_tanh", "--format", "markdown")
    assert r"| relu | $\max\left(0, z\right)$ | $0$ for $z \leq 0$; $1$ otherwise |" in out
    assert r"$1$ for $-1 < z < 1$; $0$ otherwise" in out


def test_markdown_absolute_values_do_not_split_the_cell(capsys):
    _, out, _ = _run(capsys, "softsign", "--format", "markdown")
    (row,) = _table_rows(out)
    assert r"\lvert" in row[1] and len(row) == 11


# ---------------------------------------------------------------------------
# SELU's constants by name


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
def test_selu_is_shown_with_lambda_and_alpha_named_and_their_values_listed_once(capsys, fmt):
    _, out, _ = _run(capsys, "selu", "--format", fmt)
    if fmt == "latex":
        assert r"\lambda\alpha \left(e^{z} - 1\right)" in out
        assert r"\lambda z" in out
    elif fmt == "markdown":
        assert r"$\lambda\alpha \left(e^{z} - 1\right)$ for $z < 0$; $\lambda z$ otherwise" in out
    else:
        assert "{λα(e^z - 1) for z < 0; λz otherwise}" in out
        assert "{λα e^z for z < 0; λ otherwise}" in out
        assert "(-λα, oo)" in out
    assert out.count(LAMBDA_DIGITS) == 1 and out.count(ALPHA_DIGITS) == 1
    assert "1.758" not in out and "87904967042368842997" not in out  # no folded product, no rationals


def test_selu_kink_note_names_the_values(capsys):
    _, out, _ = _run(capsys, "selu")
    assert "selu: kink at z = 0; f' there taken as λ (PyTorch λα, JAX λα)" in out


@pytest.mark.parametrize("spec", ["selu", "selu(lambda=2)", "elu(alpha=2)", "relu"])
def test_named_display_is_the_same_function(spec):
    act = parse_spec(spec)
    view = C._View(act, P.properties(act))
    back = {s: v for v, s in view.symbols.items() if isinstance(s, sp.Symbol)}
    for shown, exact in ((view.formula, act.body), (view.derivative, view.p.derivative)):
        value = shown.xreplace(back)
        for z in (-2.0, -0.5, 0.0, 0.5, 3.0):
            assert float(value.subs(Z, z)) == pytest.approx(float(exact.subs(Z, z)), rel=1e-14)


def test_short_parameters_are_not_named(capsys):
    _, out, _ = _run(capsys, "leaky_relu", "elu(alpha=2)")
    assert "{z/100 for z < 0; z otherwise}" in out and "{2*e^z - 2 for z < 0; z otherwise}" in out
    assert "α" not in out.split("\n\n")[0]


def test_json_latex_names_the_constants_and_keeps_exact_values(capsys):
    import json

    _, out, _ = _run(capsys, "selu", "--format", "json")
    (entry,) = json.loads(out)
    assert entry["latex"]["expr"].startswith(r"\begin{cases} \lambda\alpha \left(e^{z} - 1\right)")
    assert entry["latex"]["symbols"] == {"lambda": r"\lambda", "alpha": r"\alpha"}
    assert sp.Rational(entry["parameters"][0]["value"]) == SELU_LAMBDA  # exact in JSON
    (kink,) = entry["nondifferentiable"]
    assert sp.Rational(kink["torch"]) == SELU_LAMBDA * SELU_ALPHA
    assert sp.Rational(kink["derivative_used"]) == SELU_LAMBDA and kink["torch_rule"]


# ---------------------------------------------------------------------------
# Plots


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plot_missing_directory_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "no" / "such"
    code, out, err = _run(capsys, "relu", "--plot", str(missing))
    assert code == 2 and out == ""  # refused before the table is written
    assert err == f"symnet: error: cannot write plots to {missing}: no such directory (create it first)\n"
    assert not missing.exists() and not missing.parent.exists()


def test_plot_into_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = _run(capsys, "relu", "--plot", str(target))
    assert code == 2 and err.count("\n") == 1 and "not a directory" in err and str(target) in err


@pytest.mark.parametrize(
    "fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")]
)
def test_plot_formats(tmp_path, capsys, fmt, magic):
    pytest.importorskip("matplotlib")
    code, _, _ = _run(capsys, "step", "--plot", str(tmp_path), "--plot-format", fmt)
    assert code == 0
    (path,) = tmp_path.iterdir()
    assert path.name == f"step.{fmt}" and path.read_bytes().startswith(magic)


def test_plot_dpi_and_size(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert _run(capsys, "relu", "--plot", str(tmp_path))[0] == 0
    assert _png_size(tmp_path / "relu.png") == (500, 350)  # the default
    assert _run(capsys, "relu", "--plot", str(tmp_path), "--dpi", "200", "--plot-size", "4x3")[0] == 0
    assert _png_size(tmp_path / "relu.png") == (800, 600)


@pytest.mark.parametrize("args", [["--dpi", "0"], ["--dpi", "x"], ["--plot-size", "3"],
                                  ["--plot-size", "0x2"], ["--plot-format", "jpg"]])
def test_plot_bad_options_exit_2(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as info:
        main(["activations", "relu", "--plot", str(tmp_path), *args])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    "spec, name",
    [
        ("relu", "relu"),
        ("leaky_relu(alpha=1/5)", "leaky_relu_alpha=0.2"),
        ("elu(alpha=1/3)", "elu_alpha=1over3"),
        ("elu(alpha=-2/3)", "elu_alpha=-2over3"),
        ("affine(a=2, c=-1)", "affine_a=2_c=-1"),
        ("hard_sigmoid(slope=1/5)", "hard_sigmoid_slope=0.2"),
        ("leaky_relu(alpha=1e-3)", "leaky_relu_alpha=0.001"),
        ("selu", "selu"),
    ],
)
def test_plot_file_names_are_readable_and_portable(spec, name):
    got = C.file_name(parse_spec(spec))
    assert got == name
    assert re.fullmatch(r"[A-Za-z0-9_=.\-]+", got)


def test_plot_file_names_written(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert _run(capsys, "leaky_relu(alpha=1/5)", "elu(alpha=1/3)", "--plot", str(tmp_path))[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elu_alpha=1over3.png", "leaky_relu_alpha=0.2.png"]


def test_a_jump_is_a_gap_in_the_curve():
    z = np.linspace(-4, 4, 801)
    f = parse_spec("step").numpy(z)
    zs, ys = C._broken(z, f, [0.0])
    finite = ~np.isnan(zs)
    # no two consecutive drawn points straddle the jump (that would be a vertical segment)
    for i in range(len(zs) - 1):
        if finite[i] and finite[i + 1]:
            assert not (zs[i] < 0 <= zs[i + 1]), (zs[i], zs[i + 1])
            assert abs(ys[i + 1] - ys[i]) < 0.5
    assert 0.0 not in zs[finite]  # the point itself is drawn as a dot, not on either side


class _Axes:
    def __init__(self):
        self.calls = []

    def plot(self, xs, ys, fmt, **kw):
        self.calls.append((xs[0], ys[0], kw.get("markerfacecolor", "filled")))


def test_jump_dots_closed_at_the_value_open_at_the_other_limit():
    ax = _Axes()
    C._dots(ax, 0.0, 1.0, (0.0, 1.0), "C0")  # the step: f(0) = 1, f(0-) = 0
    assert (0.0, 0.0, "white") in ax.calls and (0.0, 1.0, "filled") in ax.calls
    assert len(ax.calls) == 2


def test_plots_of_jumps_look_right(tmp_path, capsys, monkeypatch):
    """The step's f gets a closed dot at (0, 1) and an open one at (0, 0); relu's f' a
    closed dot at (0, 0) and an open one at (0, 1); hard_tanh's f' at both corners."""
    pytest.importorskip("matplotlib")
    calls = []
    real = C._dots
    monkeypatch.setattr(C, "_dots", lambda ax, x, v, limits, color: (calls.append((x, v, limits)),
                                                                     real(ax, x, v, limits, color)))
    assert _run(capsys, "step", "relu", "hard_tanh", "--plot", str(tmp_path))[0] == 0
    assert (0.0, 1.0, (0.0, 1.0)) in calls  # step's f
    assert (0.0, 0.0, (0.0, 1.0)) in calls  # relu's f'
    assert (-1.0, 0.0, (0.0, 1.0)) in calls and (1.0, 0.0, (1.0, 0.0)) in calls  # hard_tanh'
    assert len(calls) == 4  # the step's f' (0 on both sides) gets no dots


def test_the_latex_table_is_split_to_fit_the_page(tmp_path):
    # the whole table was 771 pt too wide: formulas and properties are two tables now
    import shutil
    import subprocess

    from symnet.cli import main

    out = tmp_path / "table.tex"
    assert main(["activations", "--format", "latex", "-o", str(out)]) == 0
    tex = out.read_text()
    assert tex.count(r"\begin{tabular}") == 2
    assert all(spec.count("l") <= 8 for spec in __import__("re").findall(r"\\begin\{tabular\}\{(l+)\}", tex))
    if shutil.which("pdflatex") is None:
        return  # the compiled width is checked where pdflatex is installed
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n\\usepackage[margin=2cm]{geometry}\n"
                   "\\begin{document}\n\\input{table.tex}\n\\end{document}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "doc.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "Overfull \\hbox" not in run.stdout
