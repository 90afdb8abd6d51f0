"""Entrywise collapse: every entry agrees with SymPy's own Matrix products."""

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet import Network
from symnet.errors import SpecError
from symnet.networks import explicit


def _sympy_reference(widths, a=1, c=0):
    Ws = [sp.Matrix(m, n, lambda i, j, l=l: sp.Symbol(f"w{l}_{i + 1}_{j + 1}"))
          for l, (m, n) in enumerate(zip(widths, widths[1:]), start=1)]
    bs = [sp.Matrix(1, n, lambda i, j, l=l: sp.Symbol(f"b{l}_{j + 1}")) for l, n in enumerate(widths[1:], start=1)]
    W, b = sp.eye(widths[0]), sp.zeros(1, widths[0])
    for Wl, bl in zip(Ws, bs):
        W = a * W * Wl
        b = a * (b * Wl + bl) + c * sp.ones(1, Wl.cols)
    return W.expand(), b.expand()


BACKENDS = [b for b in explicit.BACKENDS if b != "flint" or explicit.flint is not None]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("widths", [[2, 2], [2, 3, 1], [3, 3, 3, 3], [1, 4, 2]])
@pytest.mark.parametrize("spec,a,c", [("identity", 1, 0), ("affine(a=2, c=-1)", 2, -1),
                                      ("affine(a=2/3, c=1/2)", sp.Rational(2, 3), sp.Rational(1, 2))])
def test_entries_match_sympy_matrix_products(widths, spec, a, c, backend):
    result = explicit.collapse_entries(Network.dense(widths, spec), backend=backend)
    W, b = _sympy_reference(widths, a, c)
    assert (result.W_matrix() - W).expand() == sp.zeros(*W.shape)
    assert (result.b_matrix() - b).expand() == sp.zeros(*b.shape)
    assert result.exact_check and result.numeric_max_abs_error < 1e-9


def test_symbolic_affine_parameters_are_variables():
    result = explicit.collapse_entries(Network.dense([1, 1, 1], "affine"))
    a1, c1, a2, c2 = sp.symbols("a1 c1 a2 c2", real=True)
    w1, w2, b1, b2 = sp.symbols("w1_1_1 w2_1_1 b1_1 b2_1")
    assert sp.expand(result.W_matrix()[0, 0] - a1 * a2 * w1 * w2) == 0
    assert sp.expand(result.b_matrix()[0, 0] - (a2 * ((a1 * b1 + c1) * w2 + b2) + c2)) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_corrupted_forward_pass_fails_the_exact_recheck(monkeypatch, backend):
    original = explicit._forward

    def corrupted(ring, *args):
        W, b = original(ring, *args)
        W[0][0] = ring.add(W[0][0], ring.one)  # one coefficient off by one
        return W, b

    monkeypatch.setattr(explicit, "_forward", corrupted)
    result = explicit.collapse_entries(Network.dense([2, 2, 2]), backend=backend)
    assert not result.exact_check


def test_nonlinear_and_symbolic_widths_are_refused():
    with pytest.raises(SpecError, match="not affine"):
        explicit.collapse_entries(Network.dense([2, 2], "tanh"))
    with pytest.raises(SpecError, match="integer widths"):
        explicit.collapse_entries(Network.dense(["n", 2]))


def test_cli_entries(capsys):
    from symnet.cli import main

    assert main(["collapse", "--layers", "2,2,1", "--entries"]) == 0
    out = capsys.readouterr().out
    assert "W'[1,1] = w1_1_1 w2_1_1 + w1_1_2 w2_2_1" in out
    assert main(["collapse", "--layers", "2,2,1", "--entries", "--activation", "relu"]) == 2


@settings(derandomize=True, deadline=None, max_examples=20)
@given(widths=st.lists(st.integers(1, 4), min_size=2, max_size=5),
       spec=st.sampled_from(["identity", "affine", "affine(a=-3, c=2)", "affine(a=1/2, c=0)", "affine(a=0, c=1)"]))
def test_property_both_rings_give_the_same_entries(widths, spec):
    if explicit.flint is None:
        pytest.skip("python-flint is not installed")
    net = Network.dense(widths, spec)
    fast = explicit.collapse_entries(net, backend="flint")
    plain = explicit.collapse_entries(net, backend="python")
    assert fast.W == plain.W and fast.b == plain.b and fast.symbols == plain.symbols
    assert fast.text().splitlines()[:-1] == plain.text().splitlines()[:-1]
    assert fast.exact_check and plain.exact_check
    assert fast.numeric_max_abs_error < 1e-9 and plain.numeric_max_abs_error < 1e-9


def test_an_unknown_or_missing_backend_is_refused(monkeypatch):
    with pytest.raises(SpecError, match="unknown entrywise backend"):
        explicit.collapse_entries(Network.dense([2, 2]), backend="maple")
    monkeypatch.setattr(explicit, "flint", None)
    with pytest.raises(SpecError, match="python-flint"):
        explicit.collapse_entries(Network.dense([2, 2]), backend="flint")
    assert explicit.collapse_entries(Network.dense([2, 2])).exact_check  # the pure fallback
