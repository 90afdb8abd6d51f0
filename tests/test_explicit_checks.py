"""The entrywise collapse's three checks, attacked: every corruption of its result is
caught by at least one of them, for any shape, activation and ring.

Each case computes the true columns, corrupts them one way (a coefficient, a term moved
between columns, columns swapped whole, a weight's encoding shared by both passes, the
read-out), and asks that ``ok`` be False or reading the entries out refuse.  The truth
is SymPy's own ``Matrix`` products, never symnet's.  A meta-test stubs the checks to say
yes and shows the same corruptions then pass: the suite depends on the checks.
"""

import random

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from symnet import Network
from symnet.networks import explicit

BACKENDS = [b for b in explicit.BACKENDS if b != "flint" or explicit.flint is not None]
KINDS = ["coefficient", "moved", "swapped", "encoding", "readout"]
SPECS = ["identity", "affine(a=-3, c=2)", "affine(a=1/2, c=1/3)", "affine(a=2, c=0)"]


def _sympy_entries(widths, a, c):
    W, b = sp.eye(widths[0]), sp.zeros(1, widths[0])
    for l, (m, n) in enumerate(zip(widths, widths[1:]), start=1):
        Wl = sp.Matrix(m, n, lambda i, j, l=l: sp.Symbol(f"w{l}_{i + 1}_{j + 1}"))
        bl = sp.Matrix(1, n, lambda i, j, l=l: sp.Symbol(f"b{l}_{j + 1}"))
        W, b = a * W * Wl, a * (b * Wl + bl) + c * sp.ones(1, n)
    return W.expand(), b.expand()


def _corrupt(monkeypatch, kind: str, backend: str, rnd: random.Random) -> None:
    original = explicit._forward
    if kind in ("coefficient", "moved", "swapped"):
        def corrupted(ring, widths, layers):
            g = original(ring, widths, layers)
            j = rnd.randrange(len(g))
            inner = ring.var(layers[-1][2][rnd.randrange(len(layers[-1][2]))][j])  # some w_L entry of column j
            if kind == "coefficient":
                g[j] = ring.add(g[j], ring.mul(inner, ring.tag(j)))
            elif kind == "moved" and len(g) > 1:
                k = (j + 1) % len(g)
                g[j] = ring.add(g[j], ring.mul(ring.mul(ring.const(-1), inner), ring.tag(j)))
                g[k] = ring.add(g[k], ring.mul(inner, ring.tag(k)))
            elif kind == "moved":
                g[j] = ring.add(g[j], ring.mul(ring.const(2), ring.tag(j)))
            elif len(g) > 1:
                k = (j + 1) % len(g)
                g[j], g[k] = g[k], g[j]
            else:
                g[j] = ring.mul(g[j], ring.const(-1))
            return g

        monkeypatch.setattr(explicit, "_forward", corrupted)
    elif kind == "encoding":
        ring_type = explicit._FlintRing if backend == "flint" else explicit._DictRing
        var = ring_type.var
        victim = {}

        def wrong(self, v):
            if "v" not in victim:
                victim["v"] = v  # the first weight asked for, read as the next variable
            return var(self, v + 1) if v == victim["v"] else var(self, v)

        explicit._FLINT_RINGS.clear()
        monkeypatch.setattr(ring_type, "var", wrong)
    else:  # readout
        ring_type = explicit._FlintRing if backend == "flint" else explicit._DictRing
        to_dict = ring_type.to_dict

        def misread(self, p):
            out = to_dict(self, p)
            if out:
                m = min(out)
                out[m] = out[m] + 1
            return out

        monkeypatch.setattr(ring_type, "to_dict", misread)


def _caught(result) -> bool:
    try:
        return not result.ok
    except AssertionError:  # reading the entries out refused them
        return True


@pytest.fixture(autouse=True)
def _fresh_rings():
    explicit._FLINT_RINGS.clear()
    yield
    explicit._FLINT_RINGS.clear()


@given(widths=st.lists(st.integers(1, 4), min_size=2, max_size=5), spec=st.sampled_from(SPECS),
       backend=st.sampled_from(BACKENDS), seed=st.integers(0, 10_000))
def test_the_true_collapse_passes_every_check_and_matches_sympy(widths, spec, backend, seed):
    net = Network.dense(widths, spec)
    result = explicit.collapse_entries(net, seed=seed, backend=backend)
    assert result.exact_check and result.point_check and result.ok
    a, c = net.layers[0].activation.affine_coefficients
    W, b = _sympy_entries(widths, a, c)
    assert (result.W_matrix() - W).expand() == sp.zeros(*W.shape)
    assert (result.b_matrix() - b).expand() == sp.zeros(*b.shape)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_corruption_is_caught(monkeypatch, kind, backend):
    rnd = random.Random(f"{kind}-{backend}")
    for case in range(25):
        widths = [rnd.randint(1, 4) for _ in range(rnd.randint(2, 5))]
        spec = rnd.choice(SPECS)
        with monkeypatch.context() as m:
            _corrupt(m, kind, backend, rnd)
            result = explicit.collapse_entries(Network.dense(widths, spec), seed=case, backend=backend)
            assert _caught(result), (kind, widths, spec)
        explicit._FLINT_RINGS.clear()


@pytest.mark.parametrize("kind", KINDS)
def test_meta_with_the_checks_stubbed_the_same_corruptions_pass(monkeypatch, kind):
    """A checker that always says yes lets the corruptions through (swapped columns then
    meet only the read-out's tag check): the test above depends on the checks, not on
    something else failing."""
    backend = BACKENDS[0]
    monkeypatch.setattr(explicit, "_exact_recheck", lambda *args: True)
    monkeypatch.setattr(explicit, "_point_check", lambda *args: True)
    monkeypatch.setattr(explicit, "_numeric_check", lambda *args: (0.0, 0.0))
    rnd = random.Random(f"meta-{kind}")
    for case in range(10):
        widths = [rnd.randint(2, 4) for _ in range(rnd.randint(2, 4))]
        with monkeypatch.context() as m:
            _corrupt(m, kind, backend, rnd)
            result = explicit.collapse_entries(Network.dense(widths, "identity"), seed=case, backend=backend)
            if kind == "swapped":
                with pytest.raises(AssertionError, match="carries the tag"):
                    _ = result.W
            else:
                assert result.ok
        explicit._FLINT_RINGS.clear()
