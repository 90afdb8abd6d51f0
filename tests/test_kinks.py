"""Kink conventions: f' where an activation is not differentiable, in symnet, PyTorch and JAX.

The tables below are what PyTorch's and JAX's autograd return at each kink, read from
their backward rules (PyTorch 2.13: threshold_backward, leaky_relu_backward, prelu,
elu_backward, hardtanh_backward, hardsigmoid_backward; JAX 0.10: jax.nn's custom JVPs
and ``where`` forms) and confirmed by running both.  They are checked against the
catalogue's data, against the compiled gradients with ``kinks="torch"`` / ``"jax"``
(always), and against PyTorch's and JAX's autograd themselves when those are installed
(skipped with a reason otherwise).  symnet's own convention is derived
(``properties.nondifferentiable``) and stays the default.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
import sympy as sp

from symnet import Network
from symnet.errors import SymnetError
from symnet.networks import properties as P
from symnet.networks.activations import SELU_ALPHA, SELU_LAMBDA, names, parse_spec
from symnet.networks.backprop import gradients

ROOT = pathlib.Path(__file__).resolve().parent.parent
R = sp.Rational
LA = SELU_LAMBDA * SELU_ALPHA

#: spec -> [(kink, f' there)]: PyTorch's documented backward rules.
TORCH = {
    "relu": [(0, 0)],
    "leaky_relu": [(0, R(1, 100))],
    "leaky_relu(alpha=1/5)": [(0, R(1, 5))],
    "prelu": [(0, R(1, 4))],
    "elu(alpha=2)": [(0, 2)],
    "selu": [(0, LA)],
    "hard_tanh": [(-1, 0), (1, 0)],
    "hard_sigmoid": [(-3, 0), (3, 0)],
    "step": [(0, 0)],
}
#: spec -> [(kink, f' there)]: JAX's jax.nn definitions.
JAX = {
    "relu": [(0, 0)],
    "leaky_relu": [(0, 1)],
    "leaky_relu(alpha=1/5)": [(0, 1)],
    "prelu": [(0, 1)],
    "elu(alpha=2)": [(0, 2)],
    "selu": [(0, LA)],
    "hard_tanh": [(-1, 1), (1, 1)],
    "hard_sigmoid": [(-3, 0), (3, 0)],
    "step": [(0, 0)],
}
#: symnet's own (derived) values, for the same kinks.
SYMNET = {
    "relu": [(0, 0)],
    "leaky_relu": [(0, 1)],
    "leaky_relu(alpha=1/5)": [(0, 1)],
    "prelu": [(0, 1)],
    "elu(alpha=2)": [(0, 1)],
    "selu": [(0, SELU_LAMBDA)],
    "hard_tanh": [(-1, 0), (1, 0)],
    "hard_sigmoid": [(-3, 0), (3, 0)],
    "step": [(0, 0)],
}
TABLES = {"torch": TORCH, "jax": JAX, "symnet": SYMNET}


def _at_kink(spec: str, point: float) -> dict:
    """A 1-1-1 network whose pre-activation z1 is exactly ``point`` and dL/dh1 is exactly 1:
    dL/db1 is then f'(point) as the compiled code takes it."""
    act = parse_spec(spec)
    y = float(act.numpy(np.array([point]))[0])
    return {
        "x": np.array([[1.0]]),
        "W1": np.array([[1.0]]),
        "b1": np.array([[point - 1.0]]),
        "W2": np.array([[1.0]]),
        "b2": np.array([[0.0]]),
        "t": np.array([[y - 1.0]]),
    }


def _net(spec: str) -> Network:
    return Network.dense([1, 1, 1], [spec, "identity"])


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("spec", list(TORCH))
def test_catalogue_records_the_frameworks_values(spec, framework):
    got = parse_spec(spec).framework_kinks(framework)
    assert [(sp.nsimplify(p), v) for p, v in got] == [(sp.Integer(p), sp.sympify(v)) for p, v in
                                                      TABLES[framework][spec]]


@pytest.mark.parametrize("spec", list(SYMNET))
def test_symnet_values_are_the_derived_ones_and_the_table_joins_them(spec):
    rows = P.kink_conventions(parse_spec(spec))
    assert [(r.point, r.symnet) for r in rows] == [(sp.Integer(p), sp.sympify(v)) for p, v in SYMNET[spec]]
    assert [r.torch for r in rows] == [sp.sympify(v) for _, v in TORCH[spec]]
    assert [r.jax for r in rows] == [sp.sympify(v) for _, v in JAX[spec]]
    assert all(r.torch_source and r.jax_source for r in rows)


@pytest.mark.parametrize("kinks", ["symnet", "torch", "jax"])
@pytest.mark.parametrize("spec", list(TORCH))
def test_compiled_gradients_at_exact_kinks_follow_the_chosen_convention(spec, kinks):
    g = gradients(_net(spec), "sse", kinks=kinks)
    f = g.function()
    for point, value in TABLES[kinks][spec]:
        out = f(**_at_kink(spec, float(point)))
        assert out["b1"][0, 0] == pytest.approx(float(value), rel=1e-15, abs=0), (spec, point)
        assert out["W1"][0, 0] == out["b1"][0, 0]  # x = 1


@pytest.mark.parametrize("spec", list(TORCH))
def test_function_kinks_overrides_the_default_and_symnet_stays_the_default(spec):
    g = gradients(_net(spec), "sse")
    assert g.kinks == "symnet"
    for point, value in TORCH[spec]:
        point_arrays = _at_kink(spec, float(point))
        assert g.function(kinks="torch")(**point_arrays)["b1"][0, 0] == pytest.approx(float(value))
        symnet = dict(SYMNET[spec])[point]
        assert g.function()(**point_arrays)["b1"][0, 0] == pytest.approx(float(symnet))


def test_the_kink_option_changes_compiled_code_only():
    plain = gradients(_net("leaky_relu"), "sse")
    torch_like = gradients(_net("leaky_relu"), "sse", kinks="torch")
    assert plain.expressions == torch_like.expressions
    assert plain.definitions == torch_like.definitions
    assert torch_like.derivation.verdict == "proved"  # the kernel's relu'(0) is untouched
    assert "np.where" in torch_like.function().source and "== 0" in torch_like.function().source
    # away from the kink both conventions agree
    point = plain.random_point(3, batch=5)
    a, b = plain.function()(**point), torch_like.function()(**point)
    for k in plain.parameters:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("spec", ["leaky_relu", "selu", "hard_tanh"])
def test_the_kink_option_keeps_the_dtype(spec):
    g = gradients(_net(spec), "sse")
    point = {k: v.astype(np.float32) for k, v in _at_kink(spec, float(TORCH[spec][0][0])).items()}
    default, torch_like = g.function()(**point), g.function(kinks="torch")(**point)
    for k in g.parameters:
        assert torch_like[k].dtype == default[k].dtype, k
    assert torch_like["b1"][0, 0] == pytest.approx(float(TORCH[spec][0][1]), rel=1e-6)


def test_an_unknown_convention_is_one_line():
    with pytest.raises(SymnetError, match=r"unknown kink convention 'pytorch'; choose from symnet, torch, jax"):
        gradients(_net("relu"), "sse", kinks="pytorch")
    with pytest.raises(SymnetError, match="unknown kink convention"):
        gradients(_net("relu"), "sse").function(kinks="tf")


def _kinked_specs() -> list[str]:
    specs = [n for n in names() if all(v.is_number for _, v in parse_spec(n).params)]
    return specs + ["elu(alpha=2)", "elu(alpha=1/2)", "leaky_relu(alpha=0)", "hard_sigmoid(slope=1/5)",
                    "hard_sigmoid(slope=1/2, shift=1/2)", "prelu(alpha=-1)"]


@pytest.mark.parametrize("spec", _kinked_specs())
def test_every_kink_of_the_catalogue_has_pytorch_and_jax_values(spec):
    for row in P.kink_conventions(parse_spec(spec)):
        assert row.torch is not None and row.jax is not None, (spec, row.point)
        # each is a subgradient-like choice: one of the one-sided derivatives (or 0 at a jump)
        if not row.jump:
            for value in (row.symnet, row.torch, row.jax):
                assert any(P._same(value, side) for side in (row.left, row.right)), (spec, value)


# ---------------------------------------------------------------------------
# Against PyTorch and JAX themselves


def _torch_function(spec: str):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0)")
    F = torch.nn.functional
    act = parse_spec(spec)
    params = {k: float(v) for k, v in act.params}
    table = {
        "relu": F.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, params.get("alpha", 0.0)),
        "prelu": lambda z: F.prelu(z, torch.tensor([params.get("alpha", 0.0)], dtype=z.dtype)),
        "elu": lambda z: F.elu(z, params.get("alpha", 1.0)),
        "selu": F.selu,
        "hard_tanh": F.hardtanh,
        "hard_sigmoid": F.hardsigmoid,
        "step": lambda z: (z >= 0).to(z.dtype),  # torch.heaviside has no derivative
    }
    return torch, table[act.name]


def _kink_batch(spec: str, table: dict) -> dict:
    """A 3-4-2 network whose first-layer pre-activations hit every kink exactly (and some
    ordinary points), with integer inputs and weights so that z1 is exact."""
    rng = np.random.default_rng(7)
    points = [float(p) for p, _ in table[spec]]
    x = rng.integers(-2, 3, size=(6, 3)).astype(float)
    W1 = rng.integers(-2, 3, size=(3, 4)).astype(float)
    target = np.array([[points[(i + j) % len(points)] if (i + j) % 3 else 0.5 for j in range(4)]
                       for i in range(6)])
    b1 = (target - x @ W1)[:1]  # row 0 hits its targets exactly; other rows vary
    x[1:] = x[:1]  # every example is the first one (z1 rows all equal the targets)
    return {"x": x, "W1": W1, "b1": b1, "W2": rng.standard_normal((4, 2)),
            "b2": rng.standard_normal((1, 2)), "t": rng.standard_normal((6, 2))}


@pytest.mark.parametrize("spec", list(TORCH))
def test_kinks_torch_matches_pytorch_autograd(spec):
    torch, fn = _torch_function(spec)
    point = _kink_batch(spec, TORCH)
    g = gradients(Network.dense([3, 4, 2], [spec, "identity"]), "sse", kinks="torch")
    ours = g.function()(**point)
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k not in ("x", "t"))
               for k, v in point.items()}
    z1 = tensors["x"] @ tensors["W1"] + tensors["b1"]
    assert set(np.round(z1.detach().numpy().ravel(), 12)) >= {float(p) for p, _ in TORCH[spec]}
    y = fn(z1) @ tensors["W2"] + tensors["b2"]
    loss = 0.5 * ((y - tensors["t"]) ** 2).sum()
    loss.backward()
    # PyTorch's hardsigmoid kernel holds 1/6 as a float (1.0f / 6.0f), even in float64
    rtol = 1e-6 if spec == "hard_sigmoid" else 1e-13
    assert ours["loss"] == pytest.approx(loss.item(), rel=rtol)
    for name in ("W1", "b1", "W2", "b2"):
        grad = tensors[name].grad  # None: no gradient reaches it (through a step)
        theirs = np.zeros_like(point[name]) if grad is None else grad.numpy()
        np.testing.assert_allclose(ours[name], theirs, rtol=rtol, atol=1e-14, err_msg=f"{spec}: {name}")
    if any(v != dict(SYMNET[spec])[p] for p, v in TORCH[spec]):  # the default would differ
        default = g.function(kinks="symnet")(**point)
        assert not np.allclose(default["b1"], tensors["b1"].grad.numpy())


def _jax_function(spec: str):
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install jax jaxlib)")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    act = parse_spec(spec)
    params = {k: float(v) for k, v in act.params}
    table = {
        "relu": jax.nn.relu,
        "leaky_relu": lambda z: jax.nn.leaky_relu(z, params.get("alpha", 0.0)),
        "prelu": lambda z: jnp.where(z >= 0, z, params.get("alpha", 0.0) * z),  # Flax's nn.PReLU
        "elu": lambda z: jax.nn.elu(z, params.get("alpha", 1.0)),
        "selu": jax.nn.selu,
        "hard_tanh": jax.nn.hard_tanh,
        "hard_sigmoid": jax.nn.hard_sigmoid,
        "step": lambda z: jnp.heaviside(z, 1.0),
    }
    return jax, jnp, table[act.name]


@pytest.mark.parametrize("spec", list(JAX))
def test_kinks_jax_matches_jax_autodiff(spec):
    jax, jnp, fn = _jax_function(spec)
    point = _kink_batch(spec, JAX)
    g = gradients(Network.dense([3, 4, 2], [spec, "identity"]), "sse", kinks="jax")
    ours = g.function()(**point)

    def loss(params):
        z1 = point["x"] @ params["W1"] + params["b1"]
        y = fn(z1) @ params["W2"] + params["b2"]
        return 0.5 * jnp.sum((y - point["t"]) ** 2)

    params = {k: jnp.asarray(point[k]) for k in ("W1", "b1", "W2", "b2")}
    theirs = jax.grad(loss)(params)
    for name in params:
        np.testing.assert_allclose(ours[name], np.asarray(theirs[name]), rtol=1e-13, atol=1e-14,
                                   err_msg=f"{spec}: {name}")


# ---------------------------------------------------------------------------
# The docs state the conventions the code uses


def _value(cell: str) -> float:
    cell = cell.strip()
    if "≈" in cell:
        return float(cell.split("≈")[1].split()[0])
    return float(sp.Rational(cell.split()[0]))


def test_docs_kink_table_matches_the_catalogue():
    text = (ROOT / "docs" / "activations.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| (-?\d+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", text, re.M)
    assert len(rows) >= 10, "docs/activations.md has no kink table"
    seen = set()
    for spec, point, symnet, torch, jax in rows:
        conv = {float(r.point): r for r in P.kink_conventions(parse_spec(spec))}
        assert float(point) in conv, (spec, point)
        r = conv[float(point)]
        for cell, value in ((symnet, r.symnet), (torch, r.torch), (jax, r.jax)):
            assert _value(cell) == pytest.approx(float(value), rel=1e-6), (spec, point, cell)
        seen.add(parse_spec(spec).name)
    kinked = {n for n in names() if all(v.is_number for _, v in parse_spec(n).params)
              and P.nondifferentiable(parse_spec(n))}
    assert kinked <= seen, f"kinks missing from the docs table: {kinked - seen}"


def test_docs_state_relu_prime_at_0_as_the_code_uses_it():
    """docs/backprop.md once said relu'(0) = 1/2 (SymPy's Heaviside(0)); the code uses 0."""
    relu = parse_spec("relu")
    derived = P.nondifferentiable(relu)[0].value
    compiled = gradients(_net("relu"), "sse").function()(**_at_kink("relu", 0.0))["b1"][0, 0]
    assert derived == 0 and compiled == 0.0
    for doc in ("backprop.md", "activations.md"):
        text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        claims = re.findall(r"(?<![a-z_])relu'\(0\)`?\s*(?:=|is)\s*`?(?:SymPy's `Heaviside\(0\) = )?([0-9/.]+)", text)
        assert claims, f"docs/{doc} does not state relu'(0)"
        for value in claims:
            assert sp.Rational(value) == derived, f"docs/{doc} says relu'(0) = {value}"
        assert "1/2" not in re.findall(r"(?<![a-z_])relu'\(0\)[^\n]{0,40}", text)[0]


def test_docs_say_the_kink_option_changes_compiled_code_only():
    text = (ROOT / "docs" / "backprop.md").read_text(encoding="utf-8")
    section = text.split("## Kinks", 1)[1].split("\n## ", 1)[0]
    assert 'kinks="torch"' in section and "compiled numeric code" in section
    assert "kernel" in section and "symnet's convention" in section
