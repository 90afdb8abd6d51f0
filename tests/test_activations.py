"""The activation catalogue: records, NumPy forms against the SymPy formulas, specs, the CLI.

The NumPy forms are checked against ``sympy.lambdify`` of the formulas (float64)
where the naive formula is accurate, and against mpmath (precision raised until
the value settles) out to |z| = 1000, where only a stable implementation survives.  Every random sample is
seeded.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet.cli import main
from symnet.errors import SpecError
from symnet.networks import activations as A
from symnet.networks.activations import Z, parse_spec

ROOT = Path(__file__).resolve().parents[1]

REQUIRED = [
    "identity", "affine", "step", "sigmoid", "tanh", "arctan", "softsign", "isru", "relu",
    "leaky_relu", "prelu", "elu", "selu", "isrlu", "softplus", "bent_identity", "silu",
    "gelu", "mish", "sin", "sinc", "gaussian", "hard_tanh", "hard_sigmoid",
]  # fmt: skip

# Specs whose parameters are all numbers: the default catalogue (affine given
# values) plus parameter settings away from the defaults.
NUMERIC_SPECS = [n for n in REQUIRED if n != "affine"] + [
    "affine(a=2, c=-1)",
    "leaky_relu(alpha=0.2)",
    "prelu(alpha=-1/2)",
    "elu(alpha=2)",
    "elu(alpha=1/2)",
    "selu(lambda=1, alpha=1)",
    "isru(alpha=3)",
    "isrlu(alpha=1/4)",
    "hard_sigmoid(slope=1/5)",
    "hard_sigmoid(slope=1/2)",
]


def _sympy_numpy(act):
    return sp.lambdify(Z, act.body, modules=[A.LAMBDIFY_NUMPY, "numpy"])


def _sympy_mpmath(act):
    return sp.lambdify(Z, act.body, modules="mpmath")


def _reference(f, x: float) -> float:
    """f(x) from the formula in mpmath, the precision doubled until two values agree.

    A fixed precision is not enough: 1 + erf(-42) or e^(1e-255) - 1 cancel
    hundreds of digits.  The NumPy forms avoid the cancellation; the reference
    must out-compute it.
    """
    previous = None
    for dps in (50, 100, 200, 400, 800, 1600):
        with mpmath.workdps(dps):
            value = mpmath.re(f(mpmath.mpf(x)))
            settled = (
                previous is not None and abs(value - previous) <= abs(value) * mpmath.mpf(10) ** -20
            )
            if settled and value != 0:  # a zero may be a total cancellation: keep going
                return float(value)
            previous = value
    if abs(value) < mpmath.mpf(10) ** -330:
        # unsettled at 1600 digits but below 1e-330: with a cancellation error
        # near 1e-1600 the true value is under the smallest double too
        return 0.0
    raise AssertionError(f"the reference did not settle at z = {x}")


# ---------------------------------------------------------------------------
# The records


def test_catalogue_holds_every_required_function_once():
    names = A.names()
    assert len(names) >= 24
    assert len(set(names)) == len(names)
    for name in REQUIRED:
        assert name in names


@pytest.mark.parametrize(
    "alias, name",
    [("heaviside", "step"), ("logistic", "sigmoid"), ("swish", "silu"), ("linear", "identity")],
)
def test_aliases_resolve(alias, name):
    assert A.lookup(alias).name == name
    assert parse_spec(alias).body == parse_spec(name).body


def test_every_record_has_display_names_and_a_doc():
    for name in A.names():
        record = A.lookup(name)
        assert record.latex.strip(), name
        assert record.doc.strip(), name


def test_step_takes_the_value_one_at_zero_not_sympys_one_half():
    body = parse_spec("step").body
    assert body.subs(Z, 0) == 1
    assert body.subs(Z, sp.Rational(-1, 10**9)) == 0
    assert parse_spec("step").numpy(np.array([0.0]))[0] == 1.0


def test_selu_constants_carry_enough_digits():
    lam = dict(parse_spec("selu").params)["lambda"]
    alpha = dict(parse_spec("selu").params)["alpha"]
    # exact rationals of the published 32 digits: a Float would absorb nearby rationals
    assert lam.is_Rational and alpha.is_Rational
    assert lam == sp.Rational("1.0507009873554804934193349852946")
    assert alpha == sp.Rational("1.6732632423543772848170429916717")
    assert float(lam) == 1.0507009873554805
    assert float(alpha) == 1.6732632423543772


def test_gelu_uses_the_exact_normal_cdf():
    body = parse_spec("gelu").body
    phi = (1 + sp.erf(Z / sp.sqrt(2))) / 2
    assert sp.simplify(body - Z * phi) == 0


def test_sinc_is_one_at_zero():
    act = parse_spec("sinc")
    assert act.body.subs(Z, 0) == 1
    assert act.numpy(np.array([0.0]))[0] == 1.0


def test_hard_sigmoid_default_is_relu6_shifted():
    act = parse_spec("hard_sigmoid")
    z = np.linspace(-6, 6, 241)
    relu6 = np.minimum(np.maximum(z + 3, 0.0), 6.0) / 6
    np.testing.assert_allclose(act.numpy(z), relu6, rtol=0, atol=1e-15)
    half = parse_spec("hard_sigmoid(slope=1/2)")
    np.testing.assert_allclose(half.numpy(z), np.clip((z + 1) / 2, 0, 1), rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------
# NumPy form against the SymPy formula


@pytest.mark.parametrize("spec", NUMERIC_SPECS)
def test_numpy_agrees_with_sympy_formula_float64(spec):
    act = parse_spec(spec)
    rng = np.random.default_rng(1234)
    z = np.concatenate(
        [rng.normal(0, 3, 400), np.linspace(-10, 10, 401), [0.0, -1.0, 1.0, -3.0, 3.0]]
    )
    want = np.broadcast_to(np.asarray(_sympy_numpy(act)(z), dtype=float), z.shape)
    got = act.numpy(z)
    assert got.shape == z.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("spec", NUMERIC_SPECS)
def test_numpy_agrees_with_high_precision_formula_far_out(spec):
    act = parse_spec(spec)
    f = _sympy_mpmath(act)
    z = np.array([-1000.0, -700.0, -100.0, -30.0, -2.5, 2.5, 30.0, 100.0, 700.0, 1000.0])
    got = act.numpy(z)
    want = np.array([_reference(f, x) for x in z])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("spec", NUMERIC_SPECS)
def test_numpy_form_is_silent_up_to_1000(spec):
    act = parse_spec(spec)
    z = np.concatenate([np.linspace(-1000, 1000, 20001), [-1e3, 1e3, 0.0, -0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out = act.numpy(z)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "spec", ["sigmoid", "tanh", "softplus", "silu", "gelu", "mish", "elu", "sinc"]
)
@settings(max_examples=60, derandomize=True, deadline=None)
@given(x=st.floats(min_value=-60, max_value=60, allow_nan=False))
def test_numpy_matches_mpmath_anywhere(spec, x):
    act = parse_spec(spec)
    want = _reference(_sympy_mpmath(act), x)
    got = float(act.numpy(np.array([x]))[0])
    assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300)


def test_numpy_forms_accept_scalars_and_keep_shapes():
    for spec in NUMERIC_SPECS:
        act = parse_spec(spec)
        assert np.shape(act.numpy(0.5)) == ()
        assert act.numpy(np.zeros((3, 4))).shape == (3, 4)


def test_numpy_needs_numeric_parameters():
    with pytest.raises(SpecError, match="no numeric value"):
        parse_spec("affine").numpy(np.zeros(2))


# ---------------------------------------------------------------------------
# Spec parsing (behaviour kept from the skeleton)


@pytest.mark.parametrize("spec", NUMERIC_SPECS + ["affine", "prelu(alpha=a)"])
def test_spec_round_trips(spec):
    act = parse_spec(spec)
    again = parse_spec(act.spec)
    assert again.body == act.body
    assert again.params == act.params


def test_specs_bind_parameters():
    assert parse_spec("affine(a=2, c=-1)").body == 2 * Z - 1
    assert parse_spec("leaky_relu(0.2)").params == (("alpha", sp.Rational(1, 5)),)
    assert dict(parse_spec("selu(lambda=2)").params)["lambda"] == 2
    a1 = parse_spec("affine", layer=1)
    assert {str(s) for s in a1.body.free_symbols} == {"a1", "c1", "z"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nosuch", "unknown activation"),
        ("relu(alpha=1)", "has no parameter"),
        ("leaky_relu(1, 2)", "too many positional"),
        ("isru(alpha=-1)", "must be positive"),
        ("hard_sigmoid(slope=0)", "must be positive"),
        ("elu(alpha=__import__('os'))", "not a number or a name"),
        ("tanh; import os", "expected NAME"),
    ],
)
def test_bad_specs_are_rejected_with_a_spec_error(spec, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(spec)


def test_describe_finds_the_activation_of_a_formula():
    act = parse_spec("gelu")
    assert A.describe(act.body).name == "gelu"


# ---------------------------------------------------------------------------
# Softmax, the vector record


def test_softmax_numpy_matches_formula_and_is_stable():
    record = A.lookup_vector("softmax")
    rng = np.random.default_rng(7)
    zs = record.inputs(3)
    f = sp.lambdify(zs, list(record.outputs(3)), modules="numpy")
    for _ in range(20):
        z = rng.normal(0, 2, 3)
        np.testing.assert_allclose(record.numpy(z), f(*z), rtol=1e-13)
    big = np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1000.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise"):
        out = record.numpy(big)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-15)
    assert out[0, 0] == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-14)
    np.testing.assert_allclose(out[1], [1 / 3] * 3, rtol=1e-15)


def test_softmax_lookup_and_bad_sizes():
    assert A.lookup_vector("softargmax").name == "softmax"
    with pytest.raises(SpecError):
        A.lookup_vector("nosuch")
    with pytest.raises(SpecError):
        A.lookup_vector("softmax").inputs(0)


# ---------------------------------------------------------------------------
# The command line: symnet activations

REQUIRED_KEYS = {
    "name": str,
    "aliases": list,
    "expr": str,
    "parameters": list,
    "range": (dict, type(None)),
    "monotonic": (bool, type(None)),
    "derivative_monotonic": (bool, type(None)),
    "identity_near_origin": (bool, type(None)),
    "bounded": (bool, type(None)),
    "affine": (bool, type(None)),
    "squashing": (bool, type(None)),
}


def _json(capsys, *args):
    code = main(["activations", *args, "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_cli_json_shape(capsys):
    data = _json(capsys)
    assert isinstance(data, list)
    by_name = {d["name"]: d for d in data}
    assert set(REQUIRED) | {"softmax"} <= set(by_name)
    for d in data:
        for key, kind in REQUIRED_KEYS.items():
            assert isinstance(d[key], kind), (d["name"], key)
        assert "derivative" in d and isinstance(d["derivative"], str)
        assert d["derivative_in_output"] is None or isinstance(d["derivative_in_output"], str)
        assert (
            d["continuity"] is None or d["continuity"] == "inf" or isinstance(d["continuity"], int)
        )
        if d["range"] is not None:
            r = d["range"]
            assert isinstance(r["lower"], str) and isinstance(r["upper"], str)
            assert isinstance(r["lower_closed"], bool) and isinstance(r["upper_closed"], bool)
    # every numeric-parameter row decides every property
    for name in REQUIRED:
        if name == "affine":
            continue
        d = by_name[name]
        assert d["range"] is not None and d["continuity"] is not None, name
        for key in (
            "monotonic",
            "derivative_monotonic",
            "identity_near_origin",
            "bounded",
            "affine",
            "squashing",
        ):
            assert isinstance(d[key], bool), (name, key)


def test_cli_json_values(capsys):
    by_name = {d["name"]: d for d in _json(capsys)}
    relu = by_name["relu"]
    assert relu["range"] == {
        **relu["range"],
        "lower": "0",
        "upper": "oo",
        "lower_closed": True,
        "upper_closed": False,
    }
    assert relu["continuity"] == 0
    assert relu["nondifferentiable"][0]["point"] == "0"
    assert relu["nondifferentiable"][0]["derivative_used"] == "0"
    assert by_name["tanh"]["derivative_in_output"] == "1 - y**2"
    assert by_name["sigmoid"]["derivative_in_output"] == "y*(1 - y)"
    assert by_name["tanh"]["continuity"] == "inf"
    assert by_name["step"]["continuity"] == -1
    assert by_name["arctan"]["range"]["lower"] == "-pi/2"
    assert by_name["silu"]["aliases"] == ["swish", "swish1"]
    assert by_name["silu"]["derivative_in_output"] is None
    assert float(by_name["silu"]["range"]["lower"]) == pytest.approx(-0.278464542761074, abs=1e-14)
    assert by_name["leaky_relu"]["parameters"] == [
        {"name": "alpha", "value": "1/100", "default": "1/100"}
    ]
    softmax = by_name["softmax"]
    assert softmax["kind"] == "vector"
    assert "KroneckerDelta(i, j)" in softmax["derivative_in_output"]
    assert softmax["range"]["lower"] == "0" and softmax["range"]["upper"] == "1"


def test_cli_selects_names_aliases_and_specs(capsys):
    data = _json(capsys, "heaviside", "elu(alpha=2)", "softmax")
    assert [d["name"] for d in data] == ["step", "elu", "softmax"]
    assert data[1]["range"]["lower"] == "-2"
    assert data[1]["derivative_monotonic"] is False


def test_cli_unknown_name_exits_2_with_one_line(capsys):
    code = main(["activations", "nosuch"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("symnet: error: unknown activation 'nosuch'")
    assert "softmax" in err


def test_cli_bad_parameter_exits_2(capsys):
    assert main(["activations", "isru(alpha=-2)"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_cli_bad_format_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["activations", "--format", "html"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("text", r"relu\s+Max\(0, z\)\s+\{0 for z <= 0; 1 otherwise\}"),
        ("markdown", r"\| relu \| \$\\max\\left\(0, z\\right\)\$ \| \$0\$ for \$z \\leq 0\$; \$1\$ otherwise"),
        ("latex", r"\\texttt\{relu\} & \$\\max\\left\(0, z\\right\)\$"),
    ],
)
def test_cli_table_formats(capsys, fmt, expected):
    assert main(["activations", "relu", "tanh", "step", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert re.search(expected, out), out
    assert "tanh" in out
    if fmt != "latex":
        assert "jump at z = 0" in out  # the step's convention is stated
    else:
        # two tables (formulas, then properties), each set small enough to fit a page
        assert out.count(r"\begin{tabular}") == 2 and out.strip().endswith(r"\end{tabular}}")


def test_cli_writes_output_file(tmp_path, capsys):
    target = tmp_path / "table.md"
    assert main(["activations", "sigmoid", "--format", "markdown", "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert r"$y \left(1 - y\right)$" in target.read_text()


def test_cli_plot_writes_pngs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "plots"
    out_dir.mkdir()  # --plot refuses a missing directory (tests/test_activation_output.py)
    assert main(["activations", "relu", "sigmoid", "affine", "--plot", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "affine" in captured.err  # symbolic parameters: not plotted, and said so
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ["relu.png", "sigmoid.png"]
    for p in out_dir.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_without_matplotlib_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    assert main(["activations", "relu", "--plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "symnet: error: matplotlib is not installed; pip install 'symnet[plot]'"


def test_command_module_imports_no_plotting_library():
    code = "import sys, symnet.cli.activations; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# docs/activations.md: its Python examples run


def test_docs_examples_run():
    text = (ROOT / "docs" / "activations.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "docs/activations.md has no python examples"
    for block in blocks:
        exec(compile(block, "docs/activations.md", "exec"), {})
