"""Soundness of the proof library and of every kind of step: wrong variants are never proved.

For every proof in ``proofs/`` (``.deriv`` files checked step by step, Python
proofs whose kernel steps are recorded as they are built) and for a corpus
with one true step of every kind the kernel accepts (matrix algebra,
elementwise functions, Hadamard products, traces, ones, scalar derivatives,
gradients ``Grad(L, W)``), wrong variants of each step are generated (swapped
factors, dropped or duplicated terms and factors, sign flips, wrong or missing
transposes, changed exponents and coefficients, wrong functions and
derivatives, off-by-one shapes) and replayed in the step's own context.  The
kernel may refute them, leave them unproved or reject them as ill-formed; when
it proves one, an independent judge (``tests/soundness.py``: explicit random
matrices at 30 digits, gradients by entrywise differentiation) must find it
true.  Meta-tests swap in a checker that always says "proved" and assert that
the same checks then fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.matrices.expressions.hadamard import HadamardProduct

from symnet import Grad, Network
from symnet.kernel import Context
from symnet.networks.backprop import gradients
from symnet.networks.composer import elementwise

from .soundness import (
    Audit,
    Recorder,
    StepRecord,
    always_proved,
    audit,
    audit_deriv,
    audit_file,
    deriv_steps,
    differs,
    kernel_checker,
    mutants,
    show,
    spread,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
PROOFS = ROOT / "proofs"
DERIV_PROOFS = sorted(PROOFS.glob("*.deriv"))
PYTHON_PROOFS = sorted(p for p in PROOFS.glob("*.py") if not p.name.startswith("_"))

#: Mutants per step: scalar steps cost the kernel's simplification ladder, so fewer of them.
PER_MATRIX_STEP = 6
PER_SCALAR_STEP = 2
#: Steps sampled from each proof (evenly spread, first and last included).
STEPS_PER_PROOF = 8


def assert_sound(result: Audit, minimum: int = 1) -> None:
    """No false mutant proved, none proved without the judge's confirmation, enough mutants tried."""
    __tracebackhide__ = True
    assert not result.unsound, "false steps proved:\n" + "\n".join(
        f"  {label}: {kind}: {show(m)}" for label, kind, m, _ in result.unsound[:10])
    assert not result.undecided, "proved mutants the judge could not evaluate:\n" + "\n".join(
        f"  {label}: {kind}: {show(m)}" for label, kind, m in result.undecided[:10])
    assert result.total >= minimum, f"only {result.total} mutants generated: {result.summary()}"


def _scalar_heavy(text: str) -> bool:
    return "diff(" in text


# ---------------------------------------------------------------------------
# The proof library: .deriv proofs


def test_the_library_has_proofs():
    assert DERIV_PROOFS and PYTHON_PROOFS


@pytest.fixture
def quick_scalar_ladder(monkeypatch):
    """Cut the kernel's budget for the scalar simplification ladder to half a second.

    A false scalar step otherwise costs the whole ladder (5 s, twice) before the
    numeric refutation.  A shorter budget can only turn a proof into
    ``unproved``, never the reverse, so no unsound verdict is hidden from steps
    the kernel decides within the budget.
    """
    import gc

    import symnet.kernel as kernel

    monkeypatch.setattr(kernel, "SCALAR_BUDGET", 0.5)
    original = kernel.scalar_is_zero
    monkeypatch.setattr(kernel, "scalar_is_zero", lambda d, budget=0.5: original(d, min(budget, 0.5)))
    # the kernel's alarm is lost when it fires inside a gc callback (Hypothesis installs one):
    # see test_hostile.py::test_a_time_budget_survives_an_alarm_inside_a_gc_callback
    enabled = gc.isenabled()
    gc.disable()
    yield
    if enabled:
        gc.enable()


@pytest.mark.parametrize("path", DERIV_PROOFS, ids=[p.name for p in DERIV_PROOFS])
def test_mutants_of_deriv_proofs_are_never_proved(path, quick_scalar_ladder):
    text = path.read_text(encoding="utf-8")
    steps = deriv_steps(text, path.name)
    assert steps, f"{path.name} has no steps"
    per_step = PER_SCALAR_STEP if _scalar_heavy(text) else 10
    result = audit_deriv(steps, per_step=per_step)
    assert_sound(result, minimum=min(2 * len(steps), 6))
    assert result.rejected >= result.total // 2, result.summary()


EXAMPLES = sorted((ROOT / "tests" / "deriv" / "good").glob("*.deriv")) + sorted(
    (ROOT / "tests" / "deriv" / "good").glob("*.md"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_mutants_of_the_example_files_are_never_proved(path, quick_scalar_ladder):
    from symnet.notes.checkfile import markdown_source

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        text = markdown_source(text)[0]
    steps = deriv_steps(text, path.name)
    result = audit_deriv(steps, per_step=PER_SCALAR_STEP if _scalar_heavy(text) else 6)
    assert_sound(result, minimum=len(steps))


def _declaration_variants(text: str) -> list[str]:
    """The file with one whole-number dimension of one declaration changed by one."""
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if not re.match(r"\s*(matrix|matrices)\b", line):
            continue
        for m in re.finditer(r"\b(\d+)\s*[x×]\s*(\d+)\b", line):
            for group in (1, 2):
                s, e = m.span(group)
                new = line[:s] + str(int(line[s:e]) + 1) + line[e:]
                out.append("\n".join(lines[:i] + [new] + lines[i + 1:]))
    return out


# ---------------------------------------------------------------------------
# The proof library: Python proofs (their kernel steps, recorded as they are built)

_RECORDED: dict[str, list[StepRecord]] = {}


def _recorded(path: Path) -> list[StepRecord]:
    if path.name not in _RECORDED:
        from symnet.notes.proofs import run_file

        with Recorder() as recorder:
            part = run_file(path)
        assert part.error is None, part.error
        _RECORDED[path.name] = recorder.records
    return _RECORDED[path.name]


def _audit_records(records: list[StepRecord], checker=kernel_checker) -> Audit:
    result = Audit()
    for record in spread(records, STEPS_PER_PROOF):
        per_step = PER_MATRIX_STEP if isinstance(record.expr, sp.MatrixExpr) else PER_SCALAR_STEP
        result.merge(audit([record], checker, per_step=per_step))
    return result


@pytest.mark.parametrize("path", PYTHON_PROOFS, ids=[p.name for p in PYTHON_PROOFS])
def test_mutants_of_python_proofs_are_never_proved(path, quick_scalar_ladder):
    records = _recorded(path)
    if not records:
        pytest.skip(f"{path.name} has no kernel-checked steps (exact or numeric evidence only)")
    result = _audit_records(records)
    assert_sound(result)
    assert result.rejected >= result.total // 2, result.summary()


# ---------------------------------------------------------------------------
# Every kind of step, each true, and its mutants

CORPUS = """\
# Every kind of step the kernel accepts, each one true
dim n
matrix x: 1x3, W: 3x4, b: 1x4, V: 4x2, c: 1x2, E: 4x4, F: 4x4
matrix A: n x n, B: n x n, C: n x n
matrix P: 2x3, Q: 3x2, u: 1x4, v: 1x4
scalar a, s, z
function f

define h = tanh(x*W + b)

# matrix algebra: distributivity, associativity, scalars, powers, transposes
(x*W + b)*V + c = x*W*V + b*V + c
a*(A + B) - B = a*A + (a - 1)*B
(A + B)**2 = A**2 + A*B + B*A + B**2
(A*B*C).T = C.T*B.T*A.T
(A - B).T*C = A.T*C - B.T*C
eye(n)*A + zeros(n, n) = A
ones(1, 3)*ones(3, 4) = 3*ones(1, 4)
ones(4, 1)*ones(1, 4)*E = ones(4, 4)*E

# elementwise functions of normalised arguments
h*V = tanh(b + x*W)*V
sigmoid(x*W + b) = sigmoid(b + x*W)
relu(u)*E - relu(u)*F = relu(u)*(E - F)
exp(2*u + v) = exp(v + u + u)

# Hadamard products
hadamard(u, v) = hadamard(v, u)
hadamard(u + v, v) = hadamard(u, v) + hadamard(v, v)
hadamard(ones(1, 4), u) = u
hadamard(a*u, v) = a*hadamard(v, u)
hadamard(u, v).T = hadamard(u.T, v.T)

# traces
trace(A*B) = trace(B*A)
trace(A*B*C) = trace(C*A*B)
trace(A.T) = trace(A)
trace(a*A + B) = a*trace(A) + trace(B)
trace(P*Q) = trace(Q*P)
x*W*u.T = u*W.T*x.T

# scalar derivatives
diff(tanh(z), z) = 1 - tanh(z)**2
diff(sigmoid(z), z) = sigmoid(z)*(1 - sigmoid(z))
diff(s*z**3, z) = 3*s*z**2
diff(exp(a*z), z) = a*exp(a*z)
diff(f(z)**2, z) = 2*f(z)*diff(f(z), z)
diff(log(z**2 + 1), z) = 2*z/(z**2 + 1)
"""


def test_the_corpus_is_true_and_proved():
    from symnet.notes.checkfile import check_text

    result = check_text(CORPUS, "corpus.deriv")
    assert result.ok, [(s.line, s.verdict, s.detail) for s in result.steps if not s.ok]
    assert len(result.steps) == 29
    # and every proved step is true for the independent judge
    assert_sound(audit_file(CORPUS, "corpus.deriv"), minimum=29)


def test_mutants_of_every_kind_of_step_are_never_proved(quick_scalar_ladder):
    steps = deriv_steps(CORPUS, "corpus.deriv")
    matrix_steps = [s for s in steps if "diff(" not in s.prev]
    scalar_steps = [s for s in steps if "diff(" in s.prev]
    result = audit_deriv(matrix_steps, per_step=6).merge(audit_deriv(scalar_steps, per_step=PER_SCALAR_STEP))
    assert_sound(result, minimum=100)
    for kind in ("swap factors", "drop term", "duplicate term", "flip sign", "wrong transpose",
                 "change exponent", "change coefficient", "wrong function", "drop factor"):
        assert result.kinds.get(kind, 0) >= 1, f"no '{kind}' mutant: {result.summary()}"


def test_off_by_one_declared_shapes_are_never_proved():
    variants = _declaration_variants(CORPUS)
    assert len(variants) >= 20
    result = Audit()
    for text in variants:
        result.merge(audit_file(text, "corpus.deriv"))
    assert not result.unsound, result.unsound[:5]


# ---------------------------------------------------------------------------
# Gradients Grad(L, W)


def _grad_records() -> list[StepRecord]:
    """True gradient steps, each proved by the kernel, in contexts with definitions."""
    x = sp.MatrixSymbol("x", 1, 3)
    W = sp.MatrixSymbol("W", 3, 2)
    b = sp.MatrixSymbol("b", 1, 2)
    v = sp.MatrixSymbol("v", 2, 1)
    t = sp.MatrixSymbol("t", 1, 2)
    h = sp.MatrixSymbol("h", 1, 2)
    L = sp.MatrixSymbol("L", 1, 1)
    z = sp.Dummy("z", real=True)
    tanh = sp.Lambda(z, sp.tanh(z))
    dtanh = sp.Lambda(z, 1 - sp.tanh(z) ** 2)
    records = []

    def prove(ctx, lhs, rhs, uses=None, label=""):
        check = ctx.check(lhs, rhs, uses=uses)
        assert check.verdict == "proved", (label, check.detail)
        records.append(StepRecord(lhs, rhs, uses, ctx, label))

    ctx = Context(trials=2, seed=3)
    prove(ctx, Grad(x * W * v, W), x.T * v.T, label="linear")
    prove(ctx, Grad(x * W * v + x * W * v, W), 2 * x.T * v.T, label="linear, twice")
    ctx = Context(trials=2, seed=3)
    ctx.define(L, (x * W + b - t) * (x * W + b - t).T)
    prove(ctx, Grad(L, W), 2 * x.T * (x * W + b - t), label="squared error")
    prove(ctx, Grad(L, b), 2 * (x * W + b - t), label="squared error, bias")
    ctx = Context(trials=2, seed=3)
    ctx.define(h, elementwise(tanh, x * W + b))
    ctx.define(L, h * v)
    prove(ctx, Grad(L, W), x.T * HadamardProduct(v.T, elementwise(dtanh, x * W + b)), label="tanh layer")
    prove(ctx, Grad(L, b), HadamardProduct(v.T, elementwise(dtanh, x * W + b)), label="tanh layer, bias")
    ctx = Context(trials=2, seed=3)
    ctx.define(L, HadamardProduct(x * W, x * W + b) * v)
    prove(ctx, Grad(L, W), x.T * (HadamardProduct(v.T, x * W + b) + HadamardProduct(v.T, x * W)),
          label="hadamard product")
    return records


def test_mutants_of_gradient_steps_are_never_proved():
    result = audit(_grad_records(), per_step=10)
    assert_sound(result, minimum=40)
    assert result.rejected >= 0.8 * result.total, result.summary()


def _backprop_records(net, loss) -> list[StepRecord]:
    with Recorder() as recorder:
        d = gradients(net, loss).derivation
    assert d.ok, d.verdict
    return recorder.records


@pytest.mark.parametrize("widths, acts, loss", [
    ([2, 3, 2], ["tanh", "sigmoid"], "sse"),
    ([3, 2, 2], ["relu", "softplus"], "xent"),
    (["n0", "n1", "n2"], ["affine", "tanh"], "mse"),
])
def test_mutants_of_backprop_derivations_are_never_proved(widths, acts, loss):
    records = _backprop_records(Network.dense(widths, acts), loss)
    result = audit(spread(records, 10), per_step=6)
    assert_sound(result, minimum=30)


WRONG_DERIVATIVES = {
    "tanh' = 1 - tanh": ("tanh", lambda z: 1 - sp.tanh(z)),
    "tanh' = 1 + tanh^2": ("tanh", lambda z: 1 + sp.tanh(z) ** 2),
    "sigmoid' = sigmoid": ("sigmoid", lambda z: 1 / (1 + sp.exp(-z))),
    "sigmoid' = sigmoid (1 + sigmoid)": ("sigmoid", lambda z: (1 / (1 + sp.exp(-z))) * (1 + 1 / (1 + sp.exp(-z)))),
    "softplus' = softplus": ("softplus", lambda z: sp.log(1 + sp.exp(z))),
    "relu' = 1": ("relu", lambda z: sp.Integer(1) + 0 * z),
    "identity' = 2": ("identity", lambda z: sp.Integer(2) + 0 * z),
}


@pytest.mark.parametrize("name", list(WRONG_DERIVATIVES))
def test_backprop_with_a_wrong_derivative_is_never_proved(name):
    from symnet.networks.activations import Z

    act_name, wrong = WRONG_DERIVATIVES[name]
    rule = lambda act: sp.Lambda(Z, wrong(Z)) if act.name == act_name else None  # noqa: E731
    other = "identity" if act_name != "identity" else "tanh"
    net = Network.dense([2, 3, 2], [act_name, other])
    derivation = gradients(net, "sse", derivative=rule).derivation
    assert derivation.verdict != "proved"
    bad = [s for s in derivation.steps if not s.ok]
    assert bad and all(s.verdict in ("refuted", "unproved") for s in bad)


# ---------------------------------------------------------------------------
# Random expressions: whatever the kernel proves, the judge confirms

_n = 2
_A, _B, _C = (sp.MatrixSymbol(name, _n, _n) for name in "ABC")
_a = sp.Symbol("a", real=True)
_zz = sp.Dummy("z", real=True)


def _expressions(depth: int):
    leaves = st.sampled_from([_A, _B, _C, sp.Identity(_n), sp.OneMatrix(_n, _n)])
    if depth == 0:
        return leaves
    sub = _expressions(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(sub, sub).map(lambda p: sp.MatAdd(*p, evaluate=False)),
        st.tuples(sub, sub).map(lambda p: sp.MatMul(*p, evaluate=False)),
        sub.map(sp.Transpose),
        st.tuples(st.sampled_from([2, -1, _a]), sub).map(lambda p: sp.MatMul(p[0], p[1], evaluate=False)),
        st.tuples(sub, sub).map(lambda p: HadamardProduct(*p)),
        sub.map(lambda e: elementwise(sp.Lambda(_zz, sp.tanh(_zz)), e)),
    )


@settings(max_examples=25, deadline=None)
@given(e=_expressions(3), pick=st.integers(0, 1000), rewrite=st.sampled_from(["expand", "mutant", "transpose"]))
def test_random_steps_the_kernel_proves_are_true(e, pick, rewrite):
    if rewrite == "expand":
        other = e.expand() if hasattr(e, "expand") else e
    elif rewrite == "transpose":
        other = sp.Transpose(sp.Transpose(e).doit())
    else:
        ms = mutants(e, limit=20)
        if not ms:
            return
        other = ms[pick % len(ms)][1]
    ctx = Context(trials=2, seed=pick)
    try:
        verdict = ctx.check(e, other).verdict
    except Exception as exc:  # noqa: BLE001 - only symnet's own refusals are acceptable
        from symnet.errors import SymnetError

        assert isinstance(exc, SymnetError), f"{type(exc).__name__}: {exc}"
        return
    if verdict == "proved":
        assert differs(e, other) is False, f"proved but false: {show(e)} = {show(other)}"


# ---------------------------------------------------------------------------
# Meta-tests: a checker that always says "proved" makes every check above fail


def test_meta_always_proved_fails_the_deriv_proof_checks():
    path = PROOFS / "c01a_three_layers.deriv"
    steps = deriv_steps(path.read_text(encoding="utf-8"), path.name)
    result = audit_deriv(steps[:3], checker=lambda lhs, rhs: "proved", per_step=6)
    assert len(result.unsound) >= 6
    with pytest.raises(AssertionError):
        assert_sound(result)


def test_meta_always_proved_fails_the_scalar_derivative_checks():
    path = PROOFS / "c08a_derivatives.deriv"
    steps = deriv_steps(path.read_text(encoding="utf-8"), path.name)
    result = audit_deriv(steps[:3], checker=lambda lhs, rhs: "proved", per_step=PER_SCALAR_STEP)
    assert len(result.unsound) >= 6
    assert {"wrong function", "flip sign"} & set(result.kinds)
    with pytest.raises(AssertionError):
        assert_sound(result)


def test_meta_always_proved_fails_the_python_proof_checks():
    records = _recorded(PROOFS / "c01b_any_depth.py") if (PROOFS / "c01b_any_depth.py").exists() else []
    if not records:
        records = _backprop_records(Network.dense([2, 3, 2], ["tanh", "identity"]), "sse")
    result = _audit_records(records[:6], checker=always_proved)
    assert len(result.unsound) >= 10
    kinds = {kind for _, kind, _, _ in result.unsound}
    assert {"drop term", "flip sign"} <= kinds
    with pytest.raises(AssertionError):
        assert_sound(result)


def test_meta_always_proved_fails_the_gradient_checks():
    result = audit(_grad_records(), always_proved, per_step=4)
    assert len(result.unsound) >= 10
    with pytest.raises(AssertionError):
        assert_sound(result)


def test_meta_the_judge_tells_true_from_false():
    n = sp.Symbol("n", integer=True, positive=True)
    A, B = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", n, n)
    assert differs((A * B).T, B.T * A.T) is False
    assert differs((A * B).T, A.T * B.T) is True
    assert differs(sp.Trace(A * B), sp.Trace(B * A)) is False
    x, W, v = sp.MatrixSymbol("x", 1, 3), sp.MatrixSymbol("W", 3, 2), sp.MatrixSymbol("v", 2, 1)
    assert differs(Grad(x * W * v, W), x.T * v.T) is False
    assert differs(Grad(x * W * v, W), 2 * x.T * v.T) is True
    # an off-by-one shape, built without SymPy's validation, is false
    W4 = sp.MatrixSymbol("W", 4, 2)
    assert differs(x * W * v, sp.MatMul._from_args((x, W4, v))) is True


META_CONFTEST = """
import pytest

import symnet.kernel as kernel


@pytest.fixture(autouse=True)
def always_yes(monkeypatch):
    # the broken checker: every step is proved
    monkeypatch.setattr(kernel.Context, "check",
                        lambda self, lhs, rhs, uses=None: kernel.Check(kernel.PROVED, "always yes", _seal=kernel._SEAL))
"""


def test_meta_the_suites_fail_when_the_kernel_always_says_proved(pytester):
    """Run the soundness tests themselves against a kernel that proves everything: they must fail."""
    package = pytester.mkpydir("metasuite")
    for name in ("soundness.py", "test_soundness.py", "test_soundness_library.py"):
        (package / name).write_text((ROOT / "tests" / name).read_text(encoding="utf-8"), encoding="utf-8")
    (package / "conftest.py").write_text(META_CONFTEST, encoding="utf-8")
    selection = ("test_no_mutant_of_a_checked_step_is_proved or test_mutants_of_gradient_steps "
                 "or test_mutants_of_every_kind_of_step or test_mutants_of_backprop_derivations")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", "-k", selection,
                                          "metasuite/test_soundness.py", "metasuite/test_soundness_library.py")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 10 and not outcomes.get("passed"), outcomes
    assert "false steps proved" in result.stdout.str()
