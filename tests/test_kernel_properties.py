"""The normal form against the judge on random terms, and the judge as a load-bearing wall.

* Property: on random terms, whatever the normal form calls equal the independent
  judge finds equal, and a random one-slip change of a term is never proved.
* Meta: a judge that always agrees (or a normal form that always agrees) must make
  the soundness checks below fail; both together prove false steps.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symnet import kernel
from symnet.kernel import PROVED, REFUTED, Context
from symnet.kernel import terms as T
from symnet.kernel.judge import Judge, Opinion

CI = settings(max_examples=120, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

A, B, C = (T.matrix(n, 2, 2) for n in "ABC")
a, b = T.scalar("a"), T.scalar("b")
LEAVES = [A, B, C, T.eye(2), T.ones(2, 2)]
SCALARS = [a, b, T.num(2), T.num(Fraction(-1, 3))]


def _matrix_terms(depth: int):
    if depth == 0:
        return st.sampled_from(LEAVES)
    sub = _matrix_terms(depth - 1)
    return st.one_of(
        st.sampled_from(LEAVES),
        st.tuples(sub, sub).map(lambda p: T.add(*p)),
        st.tuples(sub, sub).map(lambda p: T.sub(*p)),
        st.tuples(sub, sub).map(lambda p: T.mul(*p)),
        st.tuples(st.sampled_from(SCALARS), sub).map(lambda p: T.mul(*p)),
        sub.map(T.transpose),
        st.tuples(sub, sub).map(lambda p: T.hadamard(*p)),
        sub.map(lambda x: T.prim("tanh", x)),
    )


MATRICES = _matrix_terms(3)


def _rewrites(t: T.Term) -> list[T.Term]:
    """Terms equal to ``t`` by a valid law applied at the root."""
    out = [T.transpose(T.transpose(t)), T.add(t, T.zeros(2, 2)), T.mul(T.eye(2), t),
           T.mul(T.num(Fraction(1, 2)), T.add(t, t))]
    if t.op == "mul" and len(t.args) == 2 and all(x.is_matrix for x in t.args):
        x, y = t.args
        out.append(T.transpose(T.mul(T.transpose(y), T.transpose(x))))
        if y.op == "add":
            out.append(T.add(*[T.mul(x, z) for z in y.args]))
    if t.op == "had" and len(t.args) == 2:
        out.append(T.hadamard(t.args[1], t.args[0]))
    if t.op == "add" and len(t.args) == 2:
        out.append(T.add(t.args[1], t.args[0]))
    return out


def _slips(t: T.Term) -> list[T.Term]:
    """One-slip changes of ``t``: each differs from ``t`` on some instance (or is refused)."""
    return [T.add(t, A), T.add(t, T.mul(T.num(Fraction(1, 10**30)), T.ones(2, 2))), T.add(t, T.eye(2))]


@CI
@given(MATRICES, st.integers(0, 10))
def test_what_the_normal_form_proves_the_judge_confirms(t, pick):
    rewrites = _rewrites(t)
    other = rewrites[pick % len(rewrites)]
    ctx = Context(trials=2)
    check = ctx.check(t, other)
    assert check.verdict != REFUTED, (t, other, check.detail)
    if check.verdict == PROVED:
        assert check.numeric.trials > 0 and check.numeric.agree
    # the judge alone, on more instances, agrees as well
    opinion = Judge({}, trials=4, seed=5).compare(t, other)
    assert opinion.counterexample is None, (t, other, opinion.detail)


@CI
@given(MATRICES, st.integers(0, 10))
def test_a_one_slip_change_is_never_proved(t, pick):
    slips = _slips(t)
    other = slips[pick % len(slips)]
    check = Context(trials=2).check(t, other)
    assert check.verdict != PROVED, (t, other)


@CI
@given(MATRICES)
def test_normal_form_equality_implies_judge_agreement(t):
    # build a second random-looking term equal to t by two rewrites in a row
    r1 = _rewrites(t)[-1]
    r2 = _rewrites(r1)[0]
    same, _, _ = kernel.compare(kernel.Translator()(t), kernel.Translator()(r2))
    if same:
        assert Judge({}, trials=3, seed=11).compare(t, r2).counterexample is None


# ---------------------------------------------------------------------------
# Meta: the two halves of a verdict each carry weight

FALSE_STEPS = [  # each false; the normal form and the judge can each see it
    (T.mul(A, B), T.mul(B, A)),
    (T.transpose(T.mul(A, B)), T.mul(T.transpose(A), T.transpose(B))),
    (T.add(a, T.div(T.num(1), T.num(10**35))), a),
    (T.prim("tanh", T.add(A, B)), T.add(T.prim("tanh", A), T.prim("tanh", B))),
]
TRUE_STEPS = [
    (T.transpose(T.mul(A, B)), T.mul(T.transpose(B), T.transpose(A))),
    (T.mul(A, T.add(B, C)), T.add(T.mul(A, B), T.mul(A, C))),
]


def _verdicts(steps):
    return [Context().check(lhs, rhs).verdict for lhs, rhs in steps]


def _always_agrees(self, lhs, rhs, precise=False):
    return Opinion(3, True, 0.0, None, "always agrees")


def test_the_real_kernel_refutes_the_false_and_proves_the_true():
    assert _verdicts(FALSE_STEPS) == [REFUTED] * len(FALSE_STEPS)
    assert _verdicts(TRUE_STEPS) == [PROVED] * len(TRUE_STEPS)


def test_meta_a_judge_that_always_agrees_fails_the_suite(monkeypatch):
    monkeypatch.setattr(Judge, "compare", _always_agrees)
    verdicts = _verdicts(FALSE_STEPS)
    # no false step is proved (the normal form still tells them apart) ...
    assert PROVED not in verdicts
    # ... but none is refuted any more: the refutation half of the suite above fails
    assert REFUTED not in verdicts


def test_meta_a_normal_form_that_always_agrees_is_caught_by_the_judge(monkeypatch):
    monkeypatch.setattr(kernel, "compare", lambda x, y, **kw: (True, "always equal", False))
    # numbers come first: every false step is still refuted by the judge
    assert _verdicts(FALSE_STEPS) == [REFUTED] * len(FALSE_STEPS)


def test_meta_both_halves_broken_prove_false_steps(monkeypatch):
    monkeypatch.setattr(Judge, "compare", _always_agrees)
    monkeypatch.setattr(kernel, "compare", lambda x, y, **kw: (True, "always equal", False))
    # this is what the soundness suite exists to catch
    assert _verdicts(FALSE_STEPS) == [PROVED] * len(FALSE_STEPS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verdicts_do_not_depend_on_the_sample_seed(seed):
    for lhs, rhs in FALSE_STEPS:
        assert Context(seed=seed).check(lhs, rhs).verdict == REFUTED
    for lhs, rhs in TRUE_STEPS:
        assert Context(seed=seed).check(lhs, rhs).verdict == PROVED


def test_a_proved_verdict_cannot_be_forged():
    import copy
    import pickle

    with pytest.raises(PermissionError):
        kernel.Check(PROVED, "trust me")
    genuine = Context().check(*TRUE_STEPS[0])
    assert kernel.issued(genuine)
    with pytest.raises(AttributeError):
        genuine.verdict = REFUTED
    for clone in (pickle.loads(pickle.dumps(genuine)), copy.copy(genuine), copy.deepcopy(genuine)):
        assert not kernel.issued(clone)
    refuted = Context().check(*FALSE_STEPS[0])
    object.__setattr__(refuted, "verdict", PROVED)  # a deliberate bypass of the setter
    assert not kernel.issued(refuted)


def test_the_trusted_base_imports_nothing_else_from_symnet():
    import ast
    import pathlib

    folder = pathlib.Path(kernel.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name} imports from outside the kernel"
                assert not (node.module or "").startswith("symnet"), path.name
            if isinstance(node, ast.Import):
                assert not any(n.name.startswith("symnet") for n in node.names), path.name
    judge = (folder / "judge.py").read_text(encoding="utf-8")
    assert "sympy" not in judge and "lambdify" not in judge  # the judge is independent of SymPy


def test_gradient_dependence_through_a_parameter_is_never_dropped():
    import sympy as sp

    from symnet.networks import activations
    from symnet.networks.composer import apply_elementwise

    x, W = sp.MatrixSymbol("x", 1, 2), sp.MatrixSymbol("W", 2, 2)
    act = activations.lookup("leaky_relu").bind(alpha=sp.Trace(W))
    L = sp.Trace(apply_elementwise(act, x * W + 3 * sp.OneMatrix(1, 2)) * sp.OneMatrix(2, 1))
    through_argument_only = x.T * sp.OneMatrix(1, 2)  # what dropping d(alpha)/dW would give
    check = Context().check(kernel.Grad(L, W), through_argument_only)
    assert check.verdict != PROVED
    assert "depends on the variable" in check.detail or check.verdict == REFUTED


def test_counterexamples_prefer_the_smallest_sizes_that_refute():
    # symbolic dimensions are tried at 2 first (2x2 fits on a slide), then 1, then random
    P, Q = T.matrix("P", "n", "n"), T.matrix("Q", "n", "n")
    check = Context().check(T.mul(P, Q), T.mul(Q, P))
    assert check.verdict == REFUTED and check.counterexample["dims"] == {"n": 2}
    # a difference that exists only at size 1 is still found: x x^T = x^T x I holds for n = 1
    x = T.matrix("x", 1, "n")
    check = Context().check(T.mul(T.transpose(x), x), T.mul(T.mul(x, T.transpose(x)), T.eye("n")))
    assert check.verdict == REFUTED and check.counterexample["dims"] == {"n": 2}
