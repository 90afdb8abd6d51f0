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
    assert result.exact_check and result.point_check and result.numeric_max_abs_error < 1e-9
    assert result.ok


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
        g = original(ring, *args)
        g[0] = ring.add(g[0], ring.mul(ring.one, ring.tag(0)))  # one coefficient off by one
        return g

    monkeypatch.setattr(explicit, "_forward", corrupted)
    result = explicit.collapse_entries(Network.dense([2, 2, 2]), backend=backend)
    assert not result.exact_check and not result.ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_term_moved_to_another_column_fails_the_exact_recheck(monkeypatch, backend):
    """The tags pin terms to columns: moving a term (with its column's tag) is seen."""
    original = explicit._forward

    def moved(ring, *args):
        g = original(ring, *args)
        term = ring.mul(ring.var(0), ring.var(6))  # w1_1_1 w2_1_1, a term of column 1
        g[0] = ring.add(g[0], ring.mul(ring.mul(ring.const(-1), term), ring.tag(0)))
        g[1] = ring.add(g[1], ring.mul(term, ring.tag(1)))  # now in column 2, with its tag
        return g

    monkeypatch.setattr(explicit, "_forward", moved)
    result = explicit.collapse_entries(Network.dense([2, 2, 2]), backend=backend)
    assert not result.exact_check


@pytest.mark.parametrize("backend", BACKENDS)
def test_swapped_columns_are_caught_where_the_recheck_cannot_see_them(monkeypatch, backend):
    """Columns swapped whole, tags and all, leave the right-associated recheck's tagged
    sum alone: the point check and the read-out's tag check catch it (the column-by-column
    recheck of the encoded pass too)."""
    original = explicit._forward
    monkeypatch.setattr(explicit, "_forward", lambda ring, *args: original(ring, *args)[::-1])
    result = explicit.collapse_entries(Network.dense([2, 3, 2]), backend=backend)
    assert result.exact_check == (backend == "python") and not result.point_check
    with pytest.raises(AssertionError, match="carries the tag"):
        _ = result.W


def test_a_wrong_element_for_one_weight_is_caught_by_the_exact_recheck(monkeypatch, fresh_rings):
    """The pass builds its products from the block encoding's generators, the recheck
    from each weight's own element: a wrong element is seen (and by the point check)."""
    original = explicit._FlintRing.var

    def wrong(self, v):
        return original(self, 1) if v == 0 else original(self, v)  # w1_1_1 read as w1_1_2

    monkeypatch.setattr(explicit._FlintRing, "var", wrong)
    result = explicit.collapse_entries(Network.dense([2, 2, 2]), backend="flint")
    assert not result.exact_check and not result.ok


def test_an_encoding_fault_shared_by_every_pass_is_caught_when_the_entries_are_read(monkeypatch, fresh_rings):
    """Two weights given each other's powers, consistently for the pass and the recheck:
    those agree with each other; the integer point (whose values come from the blocks
    themselves) and reading the entries out do not."""
    original = explicit._FlintRing.__init__

    def swapped(self, blocks, rational):
        original(self, blocks, rational)
        a, b = 6, 7  # w2_1_1 and w2_1_2
        self.vars[a], self.vars[b] = self.vars[b], self.vars[a]
        self.place[a], self.place[b] = self.place[b], self.place[a]

    monkeypatch.setattr(explicit._FlintRing, "__init__", swapped)
    monkeypatch.setattr(explicit, "_encoded_plan", lambda ring, layers: None)  # the layout check would refuse it
    result = explicit.collapse_entries(Network.dense([2, 2, 2]), backend="flint")
    assert result.exact_check and not result.point_check
    assert result.numeric_max_abs_error > 1e-3 and not result.ok


def test_the_encoded_pass_equals_the_dot_products(monkeypatch):
    """The pass by one product per layer gives exactly the polynomials of the pass by dot
    products, on random shapes and activations."""
    import random

    if explicit.flint is None:
        pytest.skip("python-flint is not installed")
    seen = []
    original = explicit._forward

    def recording(ring, widths, layers):
        seen.append((ring, widths, layers))
        return original(ring, widths, layers)

    monkeypatch.setattr(explicit, "_forward", recording)
    rnd = random.Random(7)
    for _ in range(60):
        widths = [rnd.randint(1, 4) for _ in range(rnd.randint(2, 6))]
        spec = rnd.choice(["identity", "affine", "affine(a=-3, c=2)", "affine(a=1/2, c=1/3)", "affine(a=0, c=1)"])
        try:
            explicit.collapse_entries(Network.dense(widths, spec), backend="flint")
        except SpecError:  # over the term budget (symbolic a_l, c_l in every layer)
            continue
        ring, widths, layers = seen[-1]
        assert explicit._encoded(ring, layers)
        fast, slow = explicit._encoded_forward(ring, layers), explicit._dot_forward(ring, widths, layers)
        assert len(fast) == len(slow)
        assert all(p == q for p, q in zip(fast, slow)), (widths, spec)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_decoding_fault_is_caught_by_the_numeric_check(monkeypatch, backend):
    ring_type = explicit._FlintRing if backend == "flint" else explicit._DictRing
    original = ring_type.to_dict

    def swapped(self, p):  # variables 6 and 7 (w2_1_1, w2_1_2) read as each other
        swap = {6: 7, 7: 6}
        return {tuple(sorted(swap.get(v, v) for v in m)): c for m, c in original(self, p).items()}

    monkeypatch.setattr(ring_type, "to_dict", swapped)
    result = explicit.collapse_entries(Network.dense([2, 2, 2]), backend=backend)
    assert result.exact_check and result.point_check
    assert result.numeric_max_abs_error > 1e-3 and not result.ok


@pytest.fixture
def fresh_rings():
    if explicit.flint is None:
        pytest.skip("python-flint is not installed")
    explicit._FLINT_RINGS.clear()
    yield
    explicit._FLINT_RINGS.clear()


def test_a_parameter_named_like_a_weight_is_refused():
    with pytest.raises(SpecError, match="has the name of a weight"):
        explicit.collapse_entries(Network.dense([1, 1], "affine(a=w1_1_1, c=0)"))


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
    assert fast.ok and plain.ok
    assert fast.numeric_max_abs_error < 1e-9 and plain.numeric_max_abs_error < 1e-9


def test_an_unknown_or_missing_backend_is_refused(monkeypatch):
    with pytest.raises(SpecError, match="unknown entrywise backend"):
        explicit.collapse_entries(Network.dense([2, 2]), backend="maple")
    monkeypatch.setattr(explicit, "flint", None)
    with pytest.raises(SpecError, match="python-flint"):
        explicit.collapse_entries(Network.dense([2, 2]), backend="flint")
    assert explicit.collapse_entries(Network.dense([2, 2])).ok  # the pure fallback
