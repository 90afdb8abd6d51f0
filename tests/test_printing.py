"""Printers: textbook order, bold matrices, SymPy str syntax."""

import sympy as sp
from sympy import MatrixSymbol

from symnet.networks.composer import matadd, matmul
from symnet.render.printing import latex, sstr, symbol_latex, text

x = MatrixSymbol("x", 1, 3)
W1, W2 = MatrixSymbol("W1", 3, 3), MatrixSymbol("W2", 3, 3)
b1 = MatrixSymbol("b1", 1, 3)


def test_terms_keep_the_order_they_were_built_in():
    e = matadd(matmul(x, W1, W2), matmul(b1, W2), b1)
    assert text(e) == "x W1 W2 + b1 W2 + b1"
    assert sstr(e) == "x*W1*W2 + b1*W2 + b1"
    assert latex(e) == r"\mathbf{x} \mathbf{W}_{1} \mathbf{W}_{2} + \mathbf{b}_{1} \mathbf{W}_{2} + \mathbf{b}_{1}"


def test_parentheses_transpose_and_signs():
    e = matadd(matmul(matadd(matmul(x, W1), b1), W2.T), sp.MatMul(-1, b1, evaluate=False))
    assert text(e) == "(x W1 + b1) W2^T - b1"
    assert sstr(e) == "(x*W1 + b1)*W2.T - b1"
    assert r"\left(\mathbf{x} \mathbf{W}_{1} + \mathbf{b}_{1}\right) \mathbf{W}_{2}^{\top}" in latex(e)


def test_symbol_names():
    assert symbol_latex("W12") == r"\mathbf{W}_{12}"
    assert symbol_latex("W'") == r"\mathbf{W}'"
    assert symbol_latex("b'_{2..3}") == r"\mathbf{b}'_{2..3}"
    assert symbol_latex("delta3") == r"\boldsymbol{\delta}_{3}"


def test_sstr_of_plain_products_matches_sympy_str():
    e = matadd(matmul(x, W1, W2), b1)
    assert sstr(e).replace(" ", "") in {str(e).replace(" ", ""), "x*W1*W2+b1"}
