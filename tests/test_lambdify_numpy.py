"""``activations.lambdify_numpy`` is ``sympy.lambdify(..., modules=[LAMBDIFY_NUMPY, "numpy"])``:
the same names, the same printed code and the same values, without NumPy's lazy submodules."""

import importlib
import inspect
import subprocess
import sys
import types

import numpy as np
import pytest
import sympy as sp

from symnet.networks import activations as A
from symnet.networks import properties as P
from symnet.networks.activations import LAMBDIFY_NUMPY, Z, lambdify_numpy

_LAMBDIFY = importlib.import_module("sympy.utilities.lambdify")


def _sympy_namespace() -> dict:
    _LAMBDIFY._import("numpy")
    return _LAMBDIFY.MODULES["numpy"][0]


def test_same_names_as_sympys_numpy_namespace():
    theirs = _sympy_namespace()
    ours = vars(A._numpy_namespace())
    for name, value in theirs.items():
        if name == "__builtins__":
            continue
        if name not in ours:  # only the submodules NumPy loads on first use
            assert isinstance(value, types.ModuleType), name
            continue
        assert ours[name] is value or (type(ours[name]) is type(value) and ours[name] == value), name
    extra = {k for k in ours if k not in theirs and not (k.startswith("__") and k.endswith("__"))}
    assert not extra


def _corpus():
    for name in A.names():
        act = A.lookup(name).bind()
        yield name, act.body
        yield name + "'", P.derivative(act)
    x = Z
    yield "kinks", sp.Heaviside(x) + sp.Abs(x) + sp.sign(x) + sp.Max(x, 0) + sp.Min(x, 1)
    yield "special", sp.erf(x) + sp.erfc(x) + sp.DiracDelta(x) + sp.sqrt(x**2 + 1)
    yield "complex", sp.re(sp.I * x + x**2) + sp.im(sp.exp(sp.I * x))
    yield "piecewise", sp.Piecewise((x**2, x < 0), (sp.log(1 + x), True))


@pytest.mark.parametrize("label,expr", list(_corpus()), ids=lambda v: v if isinstance(v, str) else "")
def test_same_code_and_values(label, expr):
    ours = lambdify_numpy(Z, expr)
    theirs = sp.lambdify(Z, expr, modules=[LAMBDIFY_NUMPY, "numpy"])
    assert inspect.getsource(ours) == inspect.getsource(theirs)
    if expr.free_symbols - {Z}:
        return  # symbolic parameters: the code is all there is to compare
    zs = np.random.default_rng(0).uniform(-3, 3, 64)
    zs[:3] = (0.0, 1.0, -1.0)
    with np.errstate(all="ignore"):
        a = np.broadcast_to(np.asarray(ours(zs), dtype=float), zs.shape)
        b = np.broadcast_to(np.asarray(theirs(zs), dtype=float), zs.shape)
    assert np.array_equal(a, b, equal_nan=True)


def test_does_not_load_numpys_lazy_submodules():
    code = (
        "import sys, sympy as sp\n"
        "from symnet.networks.activations import Z, lambdify_numpy\n"
        "f = lambdify_numpy(Z, sp.tanh(Z) + sp.Heaviside(Z))\n"
        "assert f(0.5) == f(0.5)\n"
        "print(sorted(m for m in ('numpy.f2py', 'numpy.testing', 'numpy.ma') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
