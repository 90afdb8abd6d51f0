"""Red-team tests: the one rule of the kernel, attacked class by class.

    a false step is never ``proved``; a true step is never ``refuted``.

``unproved`` is always acceptable, so most assertions are one-sided: "not
proved" for false statements, "not refuted" for true ones.  A few assert
``refuted`` (an obvious counterexample exists on every instance) or ``proved``
(routine algebra), so that a checker answering ``unproved`` to everything
fails too.

Which statements are true is decided here independently of symnet: scalar
statements are evaluated by a small mpmath interpreter written in this file
(:func:`reference`) on a grid that includes points far outside the standard
normal range (|z| > 10) and exact kinks (0, +-1); matrix statements are
explained in comments (and by NumPy where it helps).

Nothing is marked xfail: a failing test is a finding for the kernel.
"""

from __future__ import annotations

import ast
import copy
import pickle

import mpmath
import numpy as np
import pytest
import sympy as sp

import symnet
import symnet.kernel as K
import symnet.networks.activations as acts
from symnet import Network
from symnet.kernel import Check, Context, Grad, issued
from symnet.kernel import terms as T
from symnet.notes.checkfile import check_text

PROVED, REFUTED, UNPROVED = "proved", "refuted", "unproved"


# ---------------------------------------------------------------------------
# Helpers: run a file, read the verdicts


def steps(text: str, path: str = "t.deriv"):
    """[(line, verdict, shown, detail)] of a file's steps; the file must be well formed."""
    r = check_text(text, path)
    assert not r.malformed, r.error_message
    return [(s.line, s.verdict, s.shown, s.detail) for c in r.chains for s in c.steps]


def verdict(decl: str, step: str) -> tuple[str, str]:
    """(verdict, shown) of the last step of ``step`` under declarations ``decl``."""
    out = steps(decl + "\n" + step + "\n")
    assert out, "no step was checked"
    _line, v, shown, _detail = out[-1]
    return v, shown


def api(lhs, rhs, ctx: Context | None = None) -> Check:
    return (ctx or Context()).check(lhs, rhs)


# ---------------------------------------------------------------------------
# An independent reference for scalar statements (mpmath, 40 digits)

mpmath.mp.dps = 40
_M = mpmath.mpf
_SELU_A = _M("1.6732632423543772848170429916717")
_SELU_L = _M("1.0507009873554804934193349852946")


class _Undefined(Exception):
    pass


def _sqrt(x):
    if x < 0:
        raise _Undefined
    return mpmath.sqrt(x)


def _log(x):
    if x <= 0:
        raise _Undefined
    return mpmath.log(x)


def _div(x, y):
    if y == 0:
        raise _Undefined
    return x / y


def _pow(b, e):
    if e == int(e):
        if b == 0 and e < 0:
            raise _Undefined
        return b ** int(e)
    if b < 0 or (b == 0 and e < 0):
        raise _Undefined
    return _M(0) if b == 0 else b ** e


_FUNCS = {
    "exp": mpmath.exp, "log": _log, "sqrt": _sqrt, "abs": abs, "tanh": mpmath.tanh, "sin": mpmath.sin,
    "relu": lambda x: max(_M(0), x),
    "step": lambda x: _M(1) if x >= 0 else _M(0),
    "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "softplus": lambda x: mpmath.log(1 + mpmath.exp(x)),
    "hard_tanh": lambda x: max(_M(-1), min(_M(1), x)),
    "leaky_relu": lambda x, al=None: (_M("0.01") if al is None else al) * x if x < 0 else x,
    "elu": lambda x, al=None: (_M(1) if al is None else al) * (mpmath.exp(x) - 1) if x < 0 else x,
    "selu": lambda x: _SELU_L * (_SELU_A * (mpmath.exp(x) - 1) if x < 0 else x),
    "softsign": lambda x: x / (1 + abs(x)),
    "silu": lambda x: x / (1 + mpmath.exp(-x)),
}
#: Stand-ins for declared functions: a proved step must hold for *every* f,
#: so a statement is false as soon as one of these makes it false.
_STANDINS = [
    {"f": lambda x: mpmath.sin(x) + _M("0.3"), "g": lambda x: x * x + 1},
    {"f": lambda x: -x * x - 1, "g": lambda x: mpmath.cos(x)},
    {"f": lambda x: x - _M("1.5"), "g": lambda x: -x},
    {"f": lambda x: mpmath.exp(x), "g": lambda x: x + 2},
]
#: Sample values of every scalar: kinks, both signs, and |z| > 10 (which
#: standard-normal sampling essentially never reaches).
_GRID = ["-23.5", "-11", "-2.5", "-1", "-0.3", "0", "0.4", "1", "2.7", "11", "23.5"]


class _Rewrite(ast.NodeTransformer):
    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            return ast.Call(ast.Name("_pow", ast.Load()), [node.left, node.right], [])
        if isinstance(node.op, ast.Div):
            return ast.Call(ast.Name("_div", ast.Load()), [node.left, node.right], [])
        return node

    def visit_Constant(self, node):
        return ast.Call(ast.Name("_M", ast.Load()), [ast.Constant(repr(node.value))], [])


def _compile(text: str):
    tree = ast.fix_missing_locations(_Rewrite().visit(ast.parse(text, mode="eval")))
    return compile(tree, "<reference>", "eval")


def _evaluate(code, env: dict, diff_defs: dict):
    def diff(expr_name, var_name, k=1):  # only diff(s, z) of a named definition
        body = diff_defs[expr_name]
        return mpmath.diff(lambda t: eval(body, {**env, var_name: t}), env[var_name], int(k))

    return eval(code, {**env, "diff": diff, "_pow": _pow, "_div": _div, "_M": _M})


def reference(lhs: str, rhs: str, scalars=("a", "c", "z", "R"), defs: dict | None = None) -> bool:
    """True iff ``lhs = rhs`` holds at every grid point (and stand-in) where both sides
    are defined and real; raises if it is defined nowhere (the test would be vacuous)."""
    defs = defs or {}
    cl, cr = _compile(lhs), _compile(rhs)
    cdefs = {k: _compile(v) for k, v in defs.items()}
    defined = 0
    points = [dict(zip(scalars, vals)) for vals in _grid_points(len(scalars))]
    for fns in _STANDINS:
        for p in points:
            env = {**_FUNCS, **fns, **{k: _M(v) for k, v in p.items()}}
            try:
                for k, c in cdefs.items():
                    env[k] = eval(c, {**env, "_pow": _pow, "_div": _div, "_M": _M})
                vl = _evaluate(cl, env, cdefs)
                vr = _evaluate(cr, env, cdefs)
            except (_Undefined, ZeroDivisionError, OverflowError, ValueError):
                continue
            if isinstance(vl, mpmath.mpc) or isinstance(vr, mpmath.mpc):
                continue
            defined += 1
            if abs(vl - vr) > _M(10) ** -30 * (1 + abs(vl) + abs(vr)):
                if abs(vl - vr) > 0:
                    return False
    assert defined, f"{lhs} = {rhs} is defined nowhere on the grid"
    return True


def _grid_points(n: int):
    # a deterministic selection: every value for the first scalar, a rotation for the others
    out = []
    for i, v in enumerate(_GRID):
        out.append([v] + [_GRID[(i * (k + 3) + k) % len(_GRID)] for k in range(n - 1)])
        out.append([v] + [_GRID[(i + 5 * (k + 1)) % len(_GRID)] for k in range(n - 1)])
    return out


def _assert_sound(v: str, shown: str, true: bool, what: str) -> None:
    if true:
        assert v != REFUTED, f"a TRUE step was refuted: {what}"
    else:
        assert v != PROVED, f"a FALSE step was proved ({shown}): {what}"


SCALARS = "scalar a, c, z, R"


# ===========================================================================
# 1. Declared functions at constant arguments (and declaration orders)

_CONSTS = ["0", "1", "2", "-1", "1/2", "0.1"]
_FALSE_AT_CONST = [
    "abs(f({k})) = f({k})",
    "abs(f({k})) = -f({k})",
    "step(f({k})) = 1",
    "step(-f({k})) = 1",
    "relu(f({k})) = f({k})",
    "relu(f({k})) = 0",
    "hard_tanh(f({k})) = f({k})",
    "relu(f(3) - f({k})) = f(3) - f({k})",
    "f({k}) = g({k})",
    "f({k})**2 = f({k})",
    "sqrt(f({k})**2) = f({k})",
    "softsign(f({k})) = f({k})/(1 + f({k}))",
    "leaky_relu(f({k}), 2) = f({k})",
]
_TRUE_AT_CONST = [
    "abs(f({k}))**2 = f({k})**2",
    "relu(f({k})) - relu(-f({k})) = f({k})",
    "abs(f({k})) = relu(f({k})) + relu(-f({k}))",
    "step(f({k}) - f({k})) = 1",
    "abs(f({k}) - f({k})) = 0",
    "softsign(f({k}))*(1 + abs(f({k}))) = f({k})",
    "hard_tanh(2*f({k})) = hard_tanh(f({k}) + f({k}))",
    "leaky_relu(f({k}), 1) = f({k})",
]


def _fn_decl(order: str) -> str:
    return {"fg": "function f, g", "gf": "function g, f", "split": "function g\nfunction f"}[order]


@pytest.mark.parametrize("order", ["fg", "gf", "split"])
@pytest.mark.parametrize("k", _CONSTS)
@pytest.mark.parametrize("template", _FALSE_AT_CONST)
def test_functions_at_constants_false_not_proved(template, k, order):
    step = template.format(k=k)
    lhs, rhs = step.split(" = ")
    assert not reference(lhs, rhs), step  # some f makes it false
    v, shown = verdict(SCALARS + "\n" + _fn_decl(order), step)
    _assert_sound(v, shown, False, step)


@pytest.mark.parametrize("order", ["fg", "gf"])
@pytest.mark.parametrize("k", _CONSTS)
@pytest.mark.parametrize("template", _TRUE_AT_CONST)
def test_functions_at_constants_true_not_refuted(template, k, order):
    step = template.format(k=k)
    lhs, rhs = step.split(" = ")
    assert reference(lhs, rhs), step
    v, shown = verdict(SCALARS + "\n" + _fn_decl(order), step)
    _assert_sound(v, shown, True, step)


@pytest.mark.parametrize("k", _CONSTS)
def test_functions_at_constants_routine(k):
    decl = SCALARS + "\nfunction f, g"
    assert verdict(decl, f"f({k}) + f({k}) = 2*f({k})")[0] == PROVED
    assert verdict(decl, f"abs(f({k}) - f({k})) = 0")[0] == PROVED
    assert verdict(decl, f"f({k}) = f({k}) + 1")[0] == REFUTED


@pytest.mark.parametrize("shape", ["1x1", "2x2", "1x3"])
@pytest.mark.parametrize("k", ["0", "1", "-1"])
def test_functions_at_constant_matrices(shape, k):
    r, c = shape.split("x")
    decl = f"{SCALARS}\nfunction f, g\nmatrix A: {shape}"
    one = f"ones({r}, {c})"
    # false: abs/relu of a possibly negative constant
    for step in [f"abs(f({k}*{one})) = f({k}*{one})", f"relu(f({k})*{one}) = f({k})*{one}",
                 f"step(f({k}*{one})) = {one}", f"f({k}*{one}) = g({k}*{one})"]:
        _assert_sound(*verdict(decl, step), False, step)
    # true
    for step in [f"f({k}*{one}) = f({k})*{one}", "hadamard(abs(f(A)), abs(f(A))) = hadamard(f(A), f(A))",
                 "relu(f(A)) - relu(-f(A)) = f(A)"]:
        _assert_sound(*verdict(decl, step), True, step)


# ===========================================================================
# 2. Decimal constants and tiny differences


@pytest.mark.parametrize("k", [10, 20, 30, 35, 40, 45, 50, 60, 64])
def test_tiny_differences_not_proved(k):
    decl = SCALARS
    for step in [f"selu(1) + R = selu(1) + R + 10**-{k}", f"(a**2 + 1)/10**{k} = 0",
                 f"z + 10**-{k} = z", f"tanh(tanh(tanh(z))) = tanh(tanh(tanh(z))) + 10**-{k}"]:
        v, shown = verdict(decl, step)
        _assert_sound(v, shown, False, step)
        if k <= 40:
            assert v == REFUTED, step  # a fixed rational difference far above 60-digit round-off
    # a relative difference of 10**-k: invisible in float64, so at least never proved
    for step in [f"exp(z) = exp(z)*(1 + 10**-{k})", f"tanh(z) = tanh(z)*(1 + 10**-{k})"]:
        _assert_sound(*verdict(decl, step), False, step)


@pytest.mark.parametrize("e", [30, 100, 200, 299, 300])
def test_tiny_literals(e):
    decl = SCALARS
    for step in [f"1e-{e} = 0", f"z + 1e-{e} = z", f"1e{e} + 1 = 1e{e}", f"z*(1 + 1e-{e}) = z"]:
        _assert_sound(*verdict(decl, step), False, step)
    for step in [f"(1e{e} + 1) - 1e{e} = 1", f"1e-{e}*z*1e{e} = z", f"1e{e}*1e-{e} = 1"]:
        _assert_sound(*verdict(decl, step), True, step)


@pytest.mark.parametrize("lit,frac", [("0.1", "1/10"), ("0.25", "1/4"), ("1.5e-3", "3/2000"),
                                      ("2.5e2", "250"), ("0.333", "333/1000"), ("1e-30", "1/10**30")])
def test_decimals_are_exact(lit, frac):
    assert verdict(SCALARS, f"{lit} = {frac}")[0] == PROVED
    assert verdict(SCALARS, f"a*{lit} = a*({frac})")[0] == PROVED
    v, shown = verdict(SCALARS, f"{lit} = {frac} + 10**-40")
    _assert_sound(v, shown, False, lit)
    assert v == REFUTED


def test_float_spelling_is_not_rounded():
    # 0.1 + 0.2 = 0.3 exactly in decimals; 0.30000000000000004 is a different number
    assert verdict(SCALARS, "0.1 + 0.2 = 0.3")[0] == PROVED
    _assert_sound(*verdict(SCALARS, "0.1 + 0.2 = 0.30000000000000004"), False, "0.30000000000000004")


@pytest.mark.parametrize("coef", ["1e-300", "1e-250", "1e-100", "1e-30"])
@pytest.mark.parametrize("body", ["z**2", "z", "exp(z)"])
def test_derivative_of_a_defined_scalar_with_tiny_coefficient(coef, body):
    """FINDING: diff(s, z) with ``define s = <tiny>*z**2`` is proved to be 0.

    The first attempt of the symbolic side translates without unfolding
    definitions, so ``s`` is a free symbol and d s/dz = 0; only the numeric
    judge stands between that and ``proved``, and it cannot see 1e-300."""
    decl = f"{SCALARS}\ndefine s = {coef}*{body}"
    step = "diff(s, z) = 0"  # false: d/dz (coef z^2) = 2 coef z, (coef exp(z)) = coef exp(z), ...
    _assert_sound(*verdict(decl, step), False, f"{decl!r}: {step}")


# ===========================================================================
# 3. Division and domains

_VANISHING = ["a - a", "a*0", "tanh(a) - tanh(a)", "relu(a) - relu(a)", "(a - c) - (a - c)", "0*exp(a)",
              "a**2 - a*a", "(a + 1)**2 - a**2 - 2*a - 1"]


@pytest.mark.parametrize("u", _VANISHING)
@pytest.mark.parametrize("template", ["c*u/u = c", "u/u = 1", "c*u**(-1)*u = c", "(c*u)**2/u**2 = c**2",
                                      "u/u = 2", "c/u*0 = 0", "u**(-2)*u**2 = 1"])
def test_division_by_a_vanishing_definition(u, template):
    decl = f"{SCALARS}\ndefine u = {u}"
    step = template.replace("u", "u")
    v, shown = verdict(decl, step)
    # u is identically 0, so every step divides by zero: never a plain "proved"
    assert v != PROVED, f"division by u = {u} = 0 was proved ({shown}): {step}"


@pytest.mark.parametrize("u", _VANISHING)
def test_division_by_a_vanishing_expression_inline(u):
    for step in [f"c*({u})/({u}) = c", f"({u})/({u}) = 1", f"({u})**(-1)*({u}) = 1"]:
        v, shown = verdict(SCALARS, step)
        assert v != PROVED, f"division by {u} = 0 was proved ({shown}): {step}"


_DOMAIN_FALSE = [
    "sqrt(a**2) = a", "(a**2)**(1/2) = a", "(a**4)**(1/4) = a", "sqrt(a)**2 = abs(a) + 1",
    "log(exp(a)) = abs(a)", "abs(a) = a", "relu(a) = a", "sqrt(a**2 + 2*a*c + c**2) = a + c",
    "(a**2)**(3/2) = a**3", "exp(log(a**2)) = a**2 + 1",
]
_DOMAIN_TRUE = [
    "sqrt(a**2) = abs(a)", "(a**2)**(1/2) = abs(a)", "exp(log(a)) = a", "log(exp(a)) = a",
    "log(a*c) = log(a) + log(c)", "log(a**2) = 2*log(a)", "log(a**2) = 2*log(abs(a))",
    "(a**3)**(1/3) = a", "sqrt(a)**2 = a", "a/a = 1", "a**2/a = a", "exp(a/2)**2 = exp(a)",
    "(a**2)**(3/2) = abs(a)**3", "sqrt(a*c)**2 = a*c",
]


@pytest.mark.parametrize("step", _DOMAIN_FALSE)
def test_domains_false_not_proved(step):
    lhs, rhs = step.split(" = ")
    assert not reference(lhs, rhs, ("a", "c")), step
    _assert_sound(*verdict(SCALARS, step), False, step)


@pytest.mark.parametrize("step", _DOMAIN_TRUE)
def test_domains_true_not_refuted(step):
    lhs, rhs = step.split(" = ")
    assert reference(lhs, rhs, ("a", "c")), step
    _assert_sound(*verdict(SCALARS, step), True, step)


@pytest.mark.parametrize("step,cond", [("a/a = 1", "a != 0"), ("exp(log(a)) = a", "a > 0"),
                                       ("sqrt(a)**2 = a", "a >= 0"), ("c*a/a = c", "a != 0")])
def test_partial_steps_carry_their_condition(step, cond):
    v, shown = verdict(SCALARS, step)
    assert v in (PROVED, UNPROVED)
    if v == PROVED:
        assert cond in shown, f"{step} proved without the condition {cond}: {shown}"


@pytest.mark.parametrize("step", ["0**0 = 1", "(a - a)**0 = 1", "a**0 = 1"])
def test_zero_to_the_zero(step):
    # the kernel's convention (and SymPy's, NumPy's) is 0**0 = 1: never refuted
    _assert_sound(*verdict(SCALARS, step), True, step)


# ===========================================================================
# 4. What a reader sees vs what is checked (Markdown)

_FALSE_LINES = ["scalar a", "  a + a", "= 3*a"]


def _fence(prefix: str = "", opener: str = "```symnet", closer: str = "```", nl: str = "\n") -> str:
    return nl.join(prefix + ln for ln in [opener, *_FALSE_LINES, closer]) + nl


_RENDERED = {
    "plain": "# N\n\n" + _fence(),
    "tilde": "# N\n\n" + _fence(opener="~~~symnet", closer="~~~"),
    "four_backticks": "# N\n\n" + _fence(opener="````symnet", closer="````"),
    "info_words": "# N\n\n" + _fence(opener="```symnet   a title"),
    "blockquote": "# N\n\n" + _fence("> "),
    "nested_blockquote": "# N\n\n" + _fence("> > "),
    "list": "# N\n\n- item\n\n" + _fence("  "),
    "ordered": "# N\n\n1. item\n\n" + _fence("   "),
    "quote_in_list": "# N\n\n- item\n\n" + _fence("  > "),
    "details": "# N\n\n<details>\n\n" + _fence() + "\n</details>\n",
    "crlf": "# N\r\n\r\n" + _fence(nl="\r\n"),
    "cr": "# N\r\r" + _fence(nl="\r"),
    "unclosed": "# N\n\n" + "\n".join(["```symnet", *_FALSE_LINES]) + "\n",
    "after_other_block": "# N\n\n```python\nx = 1\n```\n\n" + _fence(),
    "three_space_indent": "# N\n\n" + _fence("   "),
}


@pytest.mark.parametrize("name", sorted(_RENDERED))
def test_markdown_rendered_blocks_are_checked(name):
    """A false step in a block a renderer shows as symnet code is checked: refuted."""
    text = _RENDERED[name]
    r = check_text(text, "n.md")
    assert not r.malformed, (name, r.error_message, text)
    got = [s.verdict for c in r.chains for s in c.steps]
    assert got == [REFUTED], (name, got, text)


def test_markdown_chain_across_blocks_is_checked():
    text = "```symnet\nscalar a\n  a + a\n```\n\nprose\n\n```symnet\n= 3*a\n```\n"
    r = check_text(text, "n.md")
    assert [s.verdict for c in r.chains for s in c.steps] == [REFUTED]


_HIDDEN = {
    "comment": "# N\n\n<!--\n" + _fence() + "-->\n",
    "comment_with_blank_lines": "# N\n\n<!-- hidden\n\n" + _fence() + "\n-->\n",
    "comment_in_blockquote": "# N\n\n> <!--\n" + _fence("> ") + "> -->\n",
    "details_no_blank": "# N\n\n<details>\n" + _fence() + "</details>\n",
    "script": "# N\n\n<script>\n\n" + _fence() + "\n</script>\n",
    "pre": "# N\n\n<pre>\n" + _fence() + "</pre>\n",
    "indented_code": "# N\n\n" + _fence("    "),
    "inside_fence": "# N\n\n`````\n" + _fence() + "`````\n",
}


@pytest.mark.parametrize("name", sorted(_HIDDEN))
def test_markdown_hidden_blocks_never_proved(name):
    """A block the reader does not see as checked code is an error or is not checked."""
    text = _HIDDEN[name].replace("= 3*a", "= 3*a\n  a + a\n= 2*a")
    r = check_text(text, "n.md")
    if r.malformed:
        return
    assert all(s.verdict != PROVED for c in r.chains for s in c.steps), (name, text)


def test_markdown_line_without_equals_after_a_step_is_an_error():
    text = "```symnet\nscalar a\n  a + a\n= 2*a\n  a + 1\n```\n"
    assert check_text(text, "n.md").malformed
    assert check_text("scalar a\n  a + a\n= 2*a\n  a + 1\n", "n.deriv").malformed


# ===========================================================================
# 5. Round-off: true identities must not be refuted


@pytest.mark.parametrize("k", [1, 10, 20, 35, 40, 60, 100, 300, 700])
def test_huge_cancellation_not_refuted(k):
    for step in [f"exp({k}) + z - exp({k}) = z", f"(z + exp({k})) - exp({k}) = z",
                 f"exp({k})*exp(-{k})*z = z", f"sigmoid({k}) + sigmoid(-{k}) = 1"]:
        v, shown = verdict(SCALARS, step)
        _assert_sound(v, shown, True, step)
        if k <= 40:
            assert v == PROVED, step


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20, 30])
def test_deep_compositions_not_refuted(n):
    def nest(f, x):
        return f"{f}(" * n + x + ")" * n

    for f in ["tanh", "sigmoid", "softplus", "sin"]:
        t = nest(f, "z")
        _assert_sound(*verdict(SCALARS, f"{t} = {nest(f, 'z + 0')}"), True, f)
        v, shown = verdict(SCALARS, f"{t} = {t} + 10**-30")
        _assert_sound(v, shown, False, f"{f} {n}")


@pytest.mark.parametrize("n", [2, 10, 50, 90])
def test_many_terms(n):
    many = " + ".join(["a"] * n)
    assert verdict(SCALARS, f"{many} = {n}*a")[0] == PROVED
    v, shown = verdict(SCALARS, f"{many} = {n + 1}*a")
    _assert_sound(v, shown, False, n)
    assert v == REFUTED
    alternating = " + ".join(["exp(30)*a", "-exp(30)*a"] * (n // 2)) + " + c"
    _assert_sound(*verdict(SCALARS, f"{alternating} = c"), True, n)


@pytest.mark.parametrize("eps", ["1e-300", "1e-200", "1e-30", "10**-17", "0"])
def test_values_at_kinks(eps):
    true = [f"relu(z - z + {eps}) = {eps}", f"step(z - z + {eps}) = 1", f"hard_tanh(1 + {eps}) = 1",
            f"abs(z - z - {eps}) = {eps}", f"relu(-{eps}) = 0", f"leaky_relu(z - z + {eps}, 2) = {eps}"]
    for step in true:
        _assert_sound(*verdict(SCALARS, step), True, step)
    if eps != "0":
        for step in [f"step(-{eps}) = 1", f"relu(z - z + {eps}) = 0", f"hard_tanh(1 - {eps}) = 1"]:
            _assert_sound(*verdict(SCALARS, step), False, step)


_NETWORKS = [([2, 3, 1], "sigmoid", "xent"), ([3, 4, 2], "tanh", "sse"), ([2, 2, 2, 2, 2, 2, 1], "tanh", "sse"),
             ([2, 3, 1], "relu", "sse"), ([2, 3, 2], "softplus", "sse"), ([1, 1, 1], "elu", "sse"),
             ([2, 70, 1], "tanh", "sse"), ([1, 1], "identity", "sse")]


@pytest.mark.parametrize("widths,act,loss", _NETWORKS)
def test_backprop_derivations_never_refuted(widths, act, loss):
    d = symnet.gradients(Network.dense(widths, act), loss).derivation
    vs = [s.check.verdict for c in d.chains for s in c.steps]
    assert REFUTED not in vs
    assert vs.count(PROVED) >= len(vs) // 2, vs  # routine: most steps are proved


def test_zero_loss_gradients():
    # L = sum((y - y)^2) is identically 0: its gradient is 0, never refuted
    W = T.matrix("W", 2, 2)
    x = T.matrix("x", 1, 2)
    y = T.prim("tanh", T.mul(x, W))
    L = T.total(T.hadamard(T.sub(y, y), T.sub(y, y)))
    _assert_sound(api(T.grad(L, W), T.zeros(2, 2)).verdict, "", True, "zero loss")
    assert api(T.grad(L, W), T.ones(2, 2)).verdict != PROVED


# ===========================================================================
# 6. Shapes: 1x1 matrices and scalars, symbolic dims that may be 1


@pytest.mark.parametrize("n", ["1", "3", "n"])
def test_row_vectors_and_traces(n):
    decl = f"{SCALARS}\ndim n\nmatrix x: 1 x {n}, y: 1 x {n}, B: 1x1"
    for step in ["x*x.T = trace(x.T*x)", "x*y.T = y*x.T", "trace(x*x.T) = trace(x.T*x)", "(x*x.T).T = x*x.T",
                 "ones(1, 1) = eye(1)", "B.T = B", "trace(B) = B", "hadamard(B, B) = B*B",
                 f"ones(1, {n})*ones({n}, 1) = trace(eye({n}))", f"trace(ones({n}, {n})) = trace(eye({n}))",
                 "hadamard(B, eye(1)) = B", "B*ones(1, 1) = B"]:
        _assert_sound(*verdict(decl, step), True, f"{n}: {step}")
    for step in ["x*x.T = trace(x.T*x) + 1", "x*y.T = x*x.T", "trace(B) = B + ones(1, 1)",
                 f"trace(ones({n}, {n})) = trace(eye({n})) + 1", "hadamard(B, B) = B + B"]:
        _assert_sound(*verdict(decl, step), False, f"{n}: {step}")


@pytest.mark.parametrize("n", [2, 3, "n"])
def test_shapes_that_differ(n):
    decl = f"dim n\nmatrix x: 1 x {n}, A: {n} x {n}"
    # a (n x n) matrix is not a 1x1 one (n = 2, 3; for a dim n, n = 2 is an instance)
    for step in ["x.T*x = x*x.T", f"ones({n}, {n}) = eye({n})", "A = A.T"]:
        v, shown = verdict(decl, step)
        _assert_sound(v, shown, False, step)
    assert verdict(decl, "x.T*x = x*x.T")[0] == REFUTED


def test_literal_one_by_one_transpose_products():
    decl = "matrix x: 1x1, y: 1x1"
    for step in ["x.T*x = x*x.T", "x*y = y*x", "x*y = hadamard(x, y)", "x.T = x"]:
        _assert_sound(*verdict(decl, step), True, step)
    for step in ["x*y = x + y", "x.T*x = x"]:
        _assert_sound(*verdict(decl, step), False, step)


# ===========================================================================
# 7. Piecewise functions and kinks

_PIECEWISE_TRUE = [
    "relu(z) - relu(-z) = z", "abs(z) = relu(z) + relu(-z)", "relu(z)*relu(-z) = 0",
    "leaky_relu(z, 1/2) - leaky_relu(-z, 1/2) = 3/2*z", "hard_tanh(z) = -hard_tanh(-z)",
    "relu(relu(z)) = relu(z)", "step(z)*z = relu(z)", "abs(z)*step(z) = relu(z)", "relu(z)**2 = z*relu(z)",
    "elu(z, 1) - z = elu(z, 1) - z", "hard_tanh(z/2) = hard_tanh(z/2)",
]
_PIECEWISE_FALSE = [
    "relu(z) + relu(-z) = z", "step(z) + step(-z) = 1", "hard_tanh(z) = z", "relu(z) = z", "abs(z) = z",
    "leaky_relu(z, 2) = 2*z", "step(z) = relu(z)", "hard_tanh(z/10) = z/10", "relu(z - 10) = 0",
    "relu(z + 10) = z + 10", "step(z + 10) = 1", "step(z - 10) = 0", "hard_tanh(z/20) = z/20",
    "relu(z - 10) = relu(z - 11)", "elu(z, 1) = z", "step(z*z) = step(z)",
]


@pytest.mark.parametrize("step", _PIECEWISE_TRUE)
def test_piecewise_true_not_refuted(step):
    lhs, rhs = step.split(" = ")
    assert reference(lhs, rhs, ("z",)), step
    _assert_sound(*verdict(SCALARS, step), True, step)


@pytest.mark.parametrize("step", _PIECEWISE_FALSE)
def test_piecewise_false_not_proved(step):
    lhs, rhs = step.split(" = ")
    assert not reference(lhs, rhs, ("z",)), step
    _assert_sound(*verdict(SCALARS, step), False, step)


def test_piecewise_obvious_counterexamples():
    for step in ["relu(z) + relu(-z) = z", "relu(z) = z", "abs(z) = z"]:
        assert verdict(SCALARS, step)[0] == REFUTED, step


@pytest.mark.parametrize("shape", ["1x1", "2x3"])
def test_piecewise_matrices(shape):
    decl = f"matrix A: {shape}"
    for step in ["relu(A) - relu(-A) = A", "abs(A) = relu(A) + relu(-A)"]:
        _assert_sound(*verdict(decl, step), True, step)
    for step in ["relu(A) + relu(-A) = A", "relu(A) = A", "step(A) = ones({}, {})".format(*tuple(shape.split("x")))]:
        v, shown = verdict(decl, step)
        _assert_sound(v, shown, False, step)


# ===========================================================================
# 8. Gradients and derivatives


def _X(n=2):
    return T.matrix("X", n, n)


def test_gradient_transposes_and_factors():
    X = _X()
    sq = T.trace(T.mul(X, X))            # d tr(XX)/dX = 2 X^T
    gram = T.trace(T.mul(X, T.transpose(X)))  # d tr(XX^T)/dX = 2 X
    assert api(T.grad(sq, X), T.mul(T.num(2), T.transpose(X))).verdict == PROVED
    assert api(T.grad(gram, X), T.mul(T.num(2), X)).verdict == PROVED
    for wrong in [T.mul(T.num(2), X), T.transpose(X), X, T.mul(T.num(3), T.transpose(X))]:
        c = api(T.grad(sq, X), wrong)
        assert c.verdict == REFUTED, (wrong, c)
    for wrong in [X, T.transpose(X), T.mul(T.num(2), T.transpose(X))]:
        assert api(T.grad(gram, X), wrong).verdict != PROVED


@pytest.mark.parametrize("rows,cols", [(3, 2), (1, 1), (2, 3)])
def test_gradient_via_sympy(rows, cols):
    x = sp.MatrixSymbol("x", 1, rows)
    W = sp.MatrixSymbol("W", rows, cols)
    L = sp.Trace(x * W * W.T * x.T)  # d/dW = 2 x^T x W
    assert Context().check(Grad(L, W), 2 * x.T * x * W).verdict == PROVED
    assert Context().check(Grad(L, W), x.T * x * W).verdict != PROVED        # a factor 2 missing
    assert Context().check(Grad(L, W), 2 * x.T * x * W + W).verdict != PROVED
    L2 = sp.Trace(x * W * sp.OneMatrix(cols, 1))  # d/dW = x^T 1
    assert Context().check(Grad(L2, W), x.T * sp.OneMatrix(1, cols)).verdict == PROVED
    assert Context().check(Grad(L2, W), 2 * x.T * sp.OneMatrix(1, cols)).verdict != PROVED


@pytest.mark.parametrize("shift", [3, 0, -3])
@pytest.mark.parametrize("alpha", ["trace(W)", "sum", "W00"])
def test_activation_parameter_that_depends_on_the_variable(alpha, shift):
    lr = acts.function_of(acts.lookup("leaky_relu"))
    x = T.matrix("x", 1, 2)
    W = T.matrix("W", 2, 2)
    a = {"trace(W)": T.trace(W), "sum": T.total(W),
         "W00": T.trace(T.mul(T.explicit([[T.num(1), T.num(0)]]), W, T.explicit([[T.num(1)], [T.num(0)]])))}[alpha]
    pre = T.add(T.mul(x, W), T.mul(T.num(shift), T.ones(1, 2)))
    L = T.total(T.apply(lr, pre, a))
    # dropping the dependence of alpha on W would give the gradient x^T (1 (.) lrelu'(pre)) only
    dropped = T.mul(T.transpose(x), T.apply(acts.function_of(acts.lookup("step")), pre))
    assert api(T.grad(L, W), dropped).verdict != PROVED
    ctx = Context()
    ctx.define(T.scalar("p"), a)
    L2 = T.total(T.apply(lr, pre, T.scalar("p")))
    assert ctx.check(T.grad(L2, W), dropped).verdict != PROVED


# -- a 100x100 matrix silences the numeric judge (float64 differences above
# dimension 64 are never confirmed and count as agreement), so these steps
# test the symbolic side alone.

BIG = T.matrix("Big", 100, 100)


def _blind(t):
    return T.add(t, T.trace(BIG)) if t.shape is None else t


@pytest.mark.parametrize("blind", [False, True])
def test_gradient_bugs_behind_a_blind_judge(blind):
    X = _X()
    b = (lambda t: T.add(t, T.trace(BIG))) if blind else (lambda t: t)
    sq = T.trace(T.mul(X, X))  # gradient 2 X^T
    E = T.explicit([[T.num(1), T.num(2)], [T.num(3), T.num(5)]])
    # wrong transposes / factors, read through a weighting E (<G, E> = tr(G E^T))
    for wrong in [T.mul(T.num(2), X), T.transpose(X), T.mul(T.num(3), T.transpose(X))]:
        lhs = T.trace(T.mul(T.grad(sq, X), T.transpose(E)))
        rhs = T.trace(T.mul(wrong, T.transpose(E)))
        assert api(b(lhs), b(rhs)).verdict != PROVED
    right = T.trace(T.mul(T.mul(T.num(2), T.transpose(X)), T.transpose(E)))
    assert api(b(T.trace(T.mul(T.grad(sq, X), T.transpose(E)))), b(right)).verdict != REFUTED


@pytest.mark.parametrize("blind", [False, True])
def test_formula_with_a_hidden_free_symbol(blind):
    """FINDING (API, fixed): a Fn formula that mentions X itself (not as a parameter) was
    differentiated as if it did not depend on X. Formulas are now closed: refused at once;
    the dependence must be a parameter, which the gradient rules refuse to drop."""
    X = _X()
    with pytest.raises(ValueError, match="only its variable"):
        T.Fn("g", formula=T.mul(T.var(), T.trace(X)))  # g(v) = v tr(X)
    g = T.Fn("g", formula=T.mul(T.var(), T.param(0)), nparams=1)
    L = T.total(T.apply(g, X, T.trace(X)))             # the same L, its dependence visible
    wrong = T.mul(T.trace(X), T.ones(2, 2))
    lhs, rhs = T.trace(T.grad(L, X)), T.trace(wrong)
    lhs, rhs = (_blind(lhs), _blind(rhs)) if blind else (lhs, rhs)
    assert api(lhs, rhs).verdict != PROVED


@pytest.mark.parametrize("blind", [False, True])
def test_opaque_function_named_like_a_derivative(blind):
    """FINDING (API, fixed): Fn("f'") was the kernel's name for f's derivative, so a
    different function called f' was identified with d f/dz. Names are identifiers now,
    and a function called like a derivative of another stays a different function."""
    z = T.scalar("z")
    with pytest.raises(ValueError, match="letters, digits"):
        T.Fn("f'")
    f, fp = T.Fn("f"), T.Fn("f_d")
    lhs, rhs = T.diff(T.apply(f, z), z), T.apply(fp, z)
    lhs, rhs = (_blind(lhs), _blind(rhs)) if blind else (lhs, rhs)
    assert api(lhs, rhs).verdict != PROVED


@pytest.mark.parametrize("blind", [False, True])
def test_diff_through_a_trace_atom(blind):
    """FINDING: d/dz tr(exp(z A)) = tr(A exp(z A)), not 0; the trace is an atom to SymPy."""
    z, A = T.scalar("z"), T.matrix("A", 2, 2)
    lhs = T.diff(T.trace(T.prim("exp", T.mul(z, A))), z)
    lhs, rhs = (_blind(lhs), _blind(T.num(0))) if blind else (lhs, T.num(0))
    assert api(lhs, rhs).verdict != PROVED


# -- derivative of a defined scalar (through files)

_S_BODIES = ["z**2", "exp(z)", "z*a", "tanh(z)", "f(z)", "trace(exp(z*A))", "trace(z*A)"]
_GATES = {
    "none": ("", "{s}"),
    "big_matrix": ("matrix Big: 100x100", "{s} + trace(Big)"),
    "half_line": ("", "relu(z - 10)*({s})"),
    "dims_over_5": ("", "(n - 1)*(n - 2)*(n - 3)*(n - 4)*(n - 5)*({s})"),
}


@pytest.mark.parametrize("gate", sorted(_GATES))
@pytest.mark.parametrize("body", _S_BODIES)
def test_derivative_of_a_defined_scalar(body, gate):
    """FINDING: ``define s = ...`` then ``diff(s, z) = 0`` is proved whenever the
    numeric judge cannot see the derivative: s is a free symbol to the first
    symbolic attempt (and a trace is an atom to SymPy).

    Gates: a 100x100 matrix (no confirmation above dim 64), a factor relu(z - 10)
    (zero on every sampled z, nonzero for z > 10), a factor vanishing for dims
    1..5 (the only sizes the judge tries)."""
    extra, wrap = _GATES[gate]
    defn = wrap.format(s=body)
    decl = "\n".join(x for x in [SCALARS, "function f", "dim n", extra, "matrix A: 2x2", f"define s = {defn}"] if x)
    step = "diff(s, z) = 0"
    # the derivative is nonzero somewhere: z > 10 for the half line, n = 6 for the dims gate,
    # any A with tr(A) != 0 for the traces
    v, shown = verdict(decl, step)
    _assert_sound(v, shown, False, f"{defn}: {step}")


@pytest.mark.parametrize("body,deriv", [("z**2", "2*z"), ("exp(z)", "exp(z)"), ("z*a", "a"), ("tanh(z)", "1 - tanh(z)**2")])
def test_derivative_of_a_defined_scalar_routine(body, deriv):
    decl = f"{SCALARS}\ndefine s = {body}"
    assert verdict(decl, f"diff(s, z) = {deriv}")[0] == PROVED
    assert verdict(decl, f"diff(s, z) = {deriv} + 1")[0] == REFUTED


# ===========================================================================
# 9. Names, verdict objects, resource edges


def test_sympy_symbols_with_different_assumptions_are_different():
    """FINDING (API): SymPy's Symbol('a') and Symbol('a', positive=True) are different
    symbols, but the bridge reads both as the scalar a."""
    a1, a2 = sp.Symbol("a"), sp.Symbol("a", positive=True)
    assert a1 != a2
    assert Context().check(a1 - a2, sp.Integer(0)).verdict != PROVED
    A1, A2 = sp.MatrixSymbol("A", 2, 2), sp.MatrixSymbol("A", 2, 2)
    assert A1 == A2  # the same symbol: fine to identify
    assert Context().check(sp.Trace(A1), sp.Trace(A2)).verdict == PROVED


def test_sympy_dummies_do_not_collide_with_symbols():
    """FINDING (API): Dummy('x') is read as the scalar '_x<index>', the same as
    Symbol('_x<index>') (and as Dummy('x1') with a shorter index)."""
    d = sp.Dummy("x")
    s = sp.Symbol(f"_x{d.dummy_index}")
    assert d != s
    assert Context().check(d - s, sp.Integer(0)).verdict != PROVED
    d1, d2 = sp.Dummy("x", dummy_index=12), sp.Dummy("x1", dummy_index=2)
    assert d1 != d2
    assert Context().check(d1 - d2, sp.Integer(0)).verdict != PROVED


def test_same_name_matrix_and_scalar_are_different_via_api():
    a, A = T.scalar("a"), T.matrix("a", 1, 1)
    assert api(a, A).verdict != PROVED
    assert api(T.add(a, T.trace(A)), T.mul(T.num(2), a)).verdict != PROVED


def test_names_in_files():
    for text in ["scalar a\nmatrix a: 1x1\na = a", "dim n\nscalar n\nn = n", "scalar α\nα = α",
                 "matrix A: 2x2\ndefine B = A*C\nmatrix C: 2x2\nB = B", "scalar a\ndefine a = 1\na = 1"]:
        assert check_text(text, "t.deriv").malformed, text
    # a definition used before it is made: the name is unknown at the first use
    assert check_text("matrix A: 2x2\n  h\n= A\ndefine h = A\n", "t.deriv").malformed


def test_verdict_cannot_be_constructed_or_mutated():
    with pytest.raises(PermissionError):
        Check(PROVED, "normal forms agree")
    a = T.scalar("a")
    genuine = api(T.add(a, a), T.mul(T.num(2), a))
    assert genuine.verdict == PROVED and issued(genuine) and genuine.ok
    with pytest.raises(AttributeError):
        genuine.verdict = REFUTED
    false = api(a, T.add(a, T.num(1)))
    with pytest.raises(AttributeError):
        false.verdict = PROVED
    for copied in (pickle.loads(pickle.dumps(genuine)), copy.copy(genuine), copy.deepcopy(genuine)):
        assert copied.verdict != PROVED and not issued(copied) and not copied.ok


def test_look_alike_verdicts_are_not_issued():
    """FINDING: ``issued`` looks the verdict up in a WeakSet, and Check compares by
    value, so any object equal to a live genuine verdict (same verdict, detail and
    conditions) passes as issued -- e.g. a refuted verdict rewritten in place."""
    a = T.scalar("a")
    genuine = api(T.add(a, a), T.mul(T.num(2), a))
    forged = object.__new__(Check)
    for k, v in dict(verdict=PROVED, detail=genuine.detail, numeric=K.NumericReport(), counterexample=None,
                     conditions=()).items():
        object.__setattr__(forged, k, v)
    assert not issued(forged)
    assert not forged.ok
    false = api(a, T.add(a, T.num(1)))
    object.__setattr__(false, "verdict", PROVED)
    object.__setattr__(false, "detail", genuine.detail)
    assert not issued(false)


@pytest.mark.parametrize("k", [2, 16, 63, 64])
def test_big_matrix_powers(k):
    decl = "matrix A: 2x2, B: 1x1"
    assert verdict(decl, f"A**{k} = A**{k // 2}*A**{k - k // 2}")[0] == PROVED
    _assert_sound(*verdict(decl, f"A**{k} = A**{k - 1}"), False, k)
    _assert_sound(*verdict(decl, f"B**{k} = B**{k}"), True, k)


@pytest.mark.parametrize("r,k,c", [(1, 1, 1), (2, 3, 2), (3, 1, 3), (1, 4, 1)])
def test_traces_of_products_of_ones(r, k, c):
    # ones(r,k) ones(k,c) = k ones(r,c); for r = c its trace is k r
    decl = "dim n"
    if r == c:
        assert verdict(decl, f"trace(ones({r}, {k})*ones({k}, {c})) = {k * r}")[0] == PROVED
        assert verdict(decl, f"trace(ones({r}, {k})*ones({k}, {c})) = {k * r + 1}")[0] == REFUTED
    assert verdict(decl, f"ones({r}, {k})*ones({k}, {c}) = {k}*ones({r}, {c})")[0] == PROVED
    assert np.allclose(np.ones((r, k)) @ np.ones((k, c)), k * np.ones((r, c)))


def test_hadamard_with_one_by_one_and_identity():
    decl = "matrix B: 1x1, A: 2x2\ndim n\nmatrix N: n x n"
    for step in ["hadamard(B, ones(1, 1)) = B", "hadamard(B, eye(1)) = B", "hadamard(A, ones(2, 2)) = A",
                 "hadamard(eye(2), eye(2)) = eye(2)", "hadamard(N, ones(n, n)) = N", "hadamard(eye(n), eye(n)) = eye(n)"]:
        _assert_sound(*verdict(decl, step), True, step)
    for step in ["hadamard(A, eye(2)) = A", "hadamard(N, eye(n)) = N", "hadamard(eye(n), ones(n, n)) = ones(n, n)"]:
        _assert_sound(*verdict(decl, step), False, step)


@pytest.mark.parametrize("n", [65, 100, 600])
def test_large_dimensions_never_refute_true_and_never_prove_false(n):
    decl = f"matrix A: {n} x {n}, x: 1 x {n}"
    for step in ["trace(A*A.T) = trace(A.T*A)", "x*A*x.T = x*A.T*x.T", "(A + A.T).T = A + A.T"]:
        _assert_sound(*verdict(decl, step), True, step)
    for step in ["trace(A*A) = trace(A*A.T)", "x*A*x.T = x*x.T", "A = A.T", "trace(A) = trace(A) + 1"]:
        _assert_sound(*verdict(decl, step), False, step)


@pytest.mark.parametrize("n", [65, 100, 512, 1000])
def test_judge_does_not_count_an_unconfirmed_difference_as_agreement(n):
    """FINDING (amplifier): above dimension 64 a float64 difference is not confirmed at
    high precision, and the trial is then counted as *agreeing*; so for dims 65..1024
    the numeric judge can never stop a symbolic error (the docs promise 'unproved'
    only above 512).  A false statement must not get an agreeing opinion."""
    A = T.matrix("A", n, n)
    ctx = Context()
    op = ctx.judge.compare(T.trace(T.mul(A, A)), T.add(T.trace(T.mul(A, A)), T.num(1)))
    assert not (op.agree and op.trials > 0), op
