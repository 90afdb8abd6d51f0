"""The batched NumPy code printer: layouts, CSE, scalar formulas, argument checks."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet.errors import ShapeError, SymnetError
from symnet.networks.backprop import gradients
from symnet.networks.codegen import CodegenError, Program, ScalarPrinter
from symnet.networks.composer import Network


def test_source_has_named_intermediates_and_reuses_activations():
    g = gradients(Network.dense([3, 4, 4, 2], "tanh"), "sse")
    src = g.program().source()
    for name in ("z1 =", "h1 =", "z2 =", "h2 =", "z3 =", "y =", "L =", "delta3 =", "delta2 =", "delta1 ="):
        assert f"        {name}" in src, name
    # tanh runs once per layer, into a workspace buffer; delta_l = (delta_{l+1} W^T) (.) tanh'(z_l)
    # is one matrix product into a buffer, then the fused g / cosh(z)^2 (not g (1 - h^2), which
    # is 0 instead of tiny for |z| > 19)
    assert src.count("np.tanh(") == 3 and "h1 = np.tanh(z1, out=h1)" in src
    assert "z2 = np.matmul(h1, W2, out=z2)" in src and "z2 = np.add(z2, b2, out=z2)" in src
    assert "delta2 = np.matmul(delta3, W3.T, out=delta2)" in src
    assert "_times_d_tanh(delta2, z2, delta2, _slots[" in src and "_times_d_tanh(delta1, z1, delta1" in src
    # the residual y - t is computed once and used by the loss and by delta3
    assert src.count("np.subtract(y, t, out=") == 1
    # gradients: one matrix product per weight, a column sum per bias
    assert "(h2.T @ delta3)" in src and "np.sum(delta1, axis=0, keepdims=True)" in src


def test_loss_only_program_has_no_backward_pass():
    g = gradients(Network.dense([3, 4, 2], "sigmoid"), "xent")
    src = g.program().source(gradients=False)
    assert "delta" not in src and "L =" in src
    point = g.random_point(2, batch=3)
    assert set(g.loss_function()(**point)) == {"loss"}
    assert g.loss_function()(**point)["loss"] == pytest.approx(g.function()(**point)["loss"], rel=1e-15)


def test_dtype_is_kept_and_inputs_are_normalised():
    g = gradients(Network.dense([2, 3, 2], "tanh"), "sse")
    point = g.random_point(0, batch=4)
    p32 = {k: v.astype(np.float32) for k, v in point.items()}
    out = g.function()(**p32)
    assert all(out[k].dtype == np.float32 for k in g.parameters)
    ref = g.function()(**point)
    for k in g.parameters:
        assert np.allclose(out[k], ref[k], rtol=1e-4, atol=1e-5)
    # a 1-D bias and integer inputs are accepted
    one_d = dict(point, b1=point["b1"].ravel(), x=np.round(point["x"]).astype(int))
    out = g.function()(**one_d)
    assert out["b1"].shape == (1, 3) and out["W1"].dtype == np.float64


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("W2"), "missing W2"),
    (lambda p: p.update(W3=np.zeros((2, 2))), "unknown W3"),
    (lambda p: p.update(W1=np.zeros((3, 3))), "W1 has 3 rows, expected 2"),
    (lambda p: p.update(t=np.zeros((5, 2))), "t has 5 rows but x has 4"),
    (lambda p: p.update(x=np.zeros((4, 2, 1))), "x must be a matrix"),
])
def test_argument_errors_name_the_argument(change, message):
    g = gradients(Network.dense([2, 3, 2], "tanh"), "sse")
    point = g.random_point(0, batch=4)
    change(point)
    with pytest.raises(SymnetError, match=message):
        g.function()(**point)


def test_symbolic_widths_are_read_from_the_arrays():
    g = gradients(Network.dense(["n0", "n1", "n2"], "tanh"), "xent")
    f = g.function()
    assert "x.shape[1]" in f.source and "t.shape[1]" in f.source
    for n0, n1, n2 in [(1, 1, 2), (3, 5, 4)]:
        net = Network.dense([n0, n1, n2], "tanh")
        concrete = gradients(net, "xent")
        point = concrete.random_point(n0 + n1, batch=2)
        a, b = f(**point), concrete.function()(**point)
        for k in concrete.parameters:
            assert np.allclose(a[k], b[k], rtol=1e-13, atol=1e-15)


def test_awkward_parameter_names_are_renamed():
    g = gradients(Network.dense([2, 2], "affine(a=np, c=lambda)"), "sse")
    f = g.function()
    assert "lambda" not in f.source.split("def symnet_gradients(")[1].split(")")[0].split(", ")
    point = g.random_point(0, batch=2)
    assert set(f.scalars) == {"np", "lambda"}
    out = f(**point)
    x, W, b, t = point["x"], point["W1"], point["b1"], point["t"]
    y = point["np"] * (x @ W + b) + point["lambda"]
    assert np.allclose(out["b1"], point["np"] * np.sum(y - t, axis=0, keepdims=True))


def test_layouts_of_a_hand_written_program():
    """Rows, columns, batch sums and shared values in one program, against NumPy."""
    x = sp.MatrixSymbol("x", 1, 3)
    t = sp.MatrixSymbol("t", 1, 2)
    A = sp.MatrixSymbol("A", 3, 2)
    B = sp.MatrixSymbol("B", 2, 2)
    u, v, L = sp.MatrixSymbol("u", 1, 2), sp.MatrixSymbol("v", 2, 1), sp.MatrixSymbol("L", 1, 1)
    program = Program(
        batched=[x, t],
        parameters=[A, B],
        scalars=[],
        assignments=[
            (u, sp.MatMul(x, A)),                       # rows @ shared
            (v, sp.MatMul(B, sp.Transpose(u))),         # shared @ cols
            (L, sp.MatMul(t, v)),                       # rows @ cols: a per-example number
        ],
        outputs={
            "A": sp.MatMul(sp.Transpose(x), t, sp.Transpose(B)),   # cols @ rows: a batch sum
            "B": sp.MatMul(sp.Transpose(t), u),
            "s": sp.MatMul(L, u),                                  # number times rows
        },
        loss=L,
    )
    f = program.compile()
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    Av, Bv = rng.standard_normal((3, 2)), rng.standard_normal((2, 2))
    out = f(x=X, t=T, A=Av, B=Bv)
    per = [(X[i:i + 1], T[i:i + 1]) for i in range(5)]
    assert np.isclose(out["loss"], sum((ti @ (Bv @ (xi @ Av).T)).item() for xi, ti in per))
    assert np.allclose(out["A"], sum(xi.T @ ti @ Bv.T for xi, ti in per))
    assert np.allclose(out["B"], sum(ti.T @ (xi @ Av) for xi, ti in per))
    assert np.allclose(out["s"], sum((ti @ Bv @ (xi @ Av).T) * (xi @ Av) for xi, ti in per))


def test_a_nonlinear_function_of_a_batch_sum_is_refused():
    x, A, L = sp.MatrixSymbol("x", 1, 2), sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("L", 1, 1)
    s = sp.MatrixSymbol("s", 2, 2)
    exp = sp.Lambda(sp.Symbol("u"), sp.exp(sp.Symbol("u")))
    from symnet.networks.composer import elementwise

    program = Program([x], [A], [], [(s, sp.MatMul(sp.Transpose(x), x)), (L, sp.MatMul(x, A, sp.Transpose(x)))],
                      {"A": elementwise(exp, s)}, L)
    with pytest.raises(CodegenError, match="batch sum"):
        program.source()


# ---------------------------------------------------------------------------
# Scalar formulas

z, a = sp.Symbol("z", real=True), sp.Symbol("a", real=True)
FORMULAS = [
    sp.tanh(z), 1 / (1 + sp.exp(-z)), sp.Max(0, z), sp.Min(z, 1), sp.Abs(z) + sp.sign(z),
    sp.sqrt(1 + z**2), sp.Heaviside(z), sp.Heaviside(z, 1), sp.Rational(1, 3) * z**3 - a * z,
    sp.Piecewise((a * z, z < 0), (z, True)), sp.Piecewise((0, z <= -1), (1, z >= 1), (z / 2 + sp.S.Half, True)),
    sp.atan(z) + sp.sin(z) * sp.cos(z), sp.log(1 + sp.exp(z)), sp.erf(z) * z, sp.exp(-z**2) * sp.pi,
]


@pytest.mark.parametrize("formula", FORMULAS, ids=str)
def test_scalar_printer_agrees_with_sympy(formula):
    namespace = {"np": np}
    code = ScalarPrinter({z: "z", a: "a"}, namespace)(formula)
    zs = np.array([-2.5, -1.0, -0.3, 0.0, 0.4, 1.0, 3.0])
    got = eval(code, namespace, {"z": zs, "a": 0.7})  # noqa: S307 (our own generated code)
    want = [float(formula.subs({z: sp.Float(v), a: sp.Float(0.7)}).evalf()) for v in zs]
    assert np.allclose(np.broadcast_to(got, zs.shape), want, rtol=1e-12, atol=1e-14)


def test_scalar_printer_rejects_unknown_symbols_and_prints_dirac_as_zero_off_zero():
    with pytest.raises(CodegenError, match="no value for the scalar q"):
        ScalarPrinter({}, {"np": np})(sp.Symbol("q") + 1)
    namespace = {"np": np}
    code = ScalarPrinter({z: "z"}, namespace)(sp.DiracDelta(z))
    got = eval(code, namespace, {"z": np.array([-1.0, 0.0, 2.0])})  # noqa: S307
    assert got[0] == 0 and got[2] == 0 and np.isinf(got[1])


@settings(derandomize=True, deadline=None, max_examples=25)
@given(
    widths=st.lists(st.integers(1, 5), min_size=2, max_size=4),
    spec=st.sampled_from(["tanh", "sigmoid", "relu", "softplus", "leaky_relu", "identity"]),
    loss=st.sampled_from(["sse", "mse", "xent"]),
    batch=st.integers(1, 6),
)
def test_property_a_batch_is_the_sum_of_its_rows(widths, spec, loss, batch):
    g = gradients(Network.dense(widths, spec), loss)
    point = g.random_point(len(widths) + batch, batch=batch)
    f = g.function()
    whole = f(**point)
    rows = [f(**dict(point, x=point["x"][i:i + 1], t=point["t"][i:i + 1])) for i in range(batch)]
    for name in ["loss", *g.parameters]:
        total = sum(r[name] for r in rows)
        assert np.allclose(whole[name], total, rtol=1e-11, atol=1e-13), name
    for name in g.parameters:
        assert whole[name].shape == point[name].shape


def test_exec_sees_only_generated_source():
    import inspect

    import symnet.networks.codegen as codegen

    text = inspect.getsource(codegen)
    assert text.count("exec(") == 1 and "def _exec_generated" in text
    with pytest.raises(ShapeError):
        gradients(Network.dense([2, 2], "affine"), "sse").function()(
            x=np.zeros((1, 2)), t=np.zeros((1, 2)), W1=np.zeros((2, 2)), b1=np.zeros((1, 2)),
            a1=np.zeros(2), c1=0.0)
