"""Printers: expressions and derivations as plain text, LaTeX, Markdown and JSON.

Views only: nothing here computes or checks.  Matrix expressions are printed
by a small printer of our own so that terms keep the order they were built in
(textbook order: ``x W1 W2 W3 + b1 W2 W3 + b2 W3 + b3``), matrices are bold,
and printing stays linear in the size of the expression (SymPy's printers sort
terms and take seconds on deep collapsed forms).

Three expression styles:

* ``text``  - juxtaposition, as on a blackboard: ``(h1 W2 + b2) W3 + b3``;
* ``sstr``  - SymPy's ``str`` syntax, also valid in ``.deriv`` files:
  ``(h1*W2 + b2)*W3 + b3``, ``W.T``, ``hadamard(A, B)``, ``ones(1, 4)``;
* ``latex`` - ``\\mathbf{h}_{1} \\mathbf{W}_{2}``, ``\\odot``, ``^{\\top}``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import sympy as sp
from sympy.core.sympify import _sympify
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

from symnet.kernel.printer import text as term_text
from symnet.kernel.terms import Term
from symnet.networks.activations import describe, describe_derivative
from symnet.render.display import tex_text as _tex_escape  # the one LaTeX text escaper

#: Text names of catalogue functions as a blackboard shows them.
_TEXT_NAMES = {"sigmoid": "σ", "identity": "id"}

ADD, MUL, POW, ATOM = 1, 2, 3, 4

_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega",
}
_NAME = re.compile(r"^([A-Za-z]+?)('*)(?:([0-9]+)|_([A-Za-z0-9]+))?('*)$")
_BRACED = re.compile(r"^([A-Za-z]+?)('*)_\{([A-Za-z0-9+\-.,]*)\}$")


@functools.lru_cache(maxsize=8192)
def symbol_latex(name: str, bold: bool = True) -> str:
    """``W1 -> \\mathbf{W}_{1}``, ``W'_3 -> \\mathbf{W}'_{3}``, ``delta2 -> \\boldsymbol{\\delta}_{2}``."""
    braced = _BRACED.match(name)
    if braced:
        base, primes, sub = braced.groups()
        return symbol_latex(base, bold) + primes + "_{" + sub.replace("..", r"..") + "}"
    m = _NAME.match(name)
    if not m:
        safe = name.replace("\\", "").replace("{", "").replace("}", "").replace("_", r"\_")
        return rf"\mathbf{{{safe}}}" if bold else rf"\mathrm{{{safe}}}"
    base, primes, digits, named, primes2 = m.groups()
    sub = digits or named
    if base in _GREEK:
        core = rf"\boldsymbol{{\{base}}}" if bold else rf"\{base}"
    elif len(base) > 1:
        core = rf"\mathbf{{{base}}}" if bold else rf"\mathrm{{{base}}}"
    else:
        core = rf"\mathbf{{{base}}}" if bold else base
    out = core + primes + primes2
    if sub:
        out += "_{" + sub + "}"
    return out


@functools.lru_cache(maxsize=8192)
def text_name(name: str) -> str:
    """A name as plain text shows it: ``W'_{1} -> W'_1``, ``b'_{2..3} -> b'_(2..3)``."""
    braced = _BRACED.match(name)
    if not braced:
        return name
    base, primes, sub = braced.groups()
    return f"{base}{primes}_{sub}" if sub.isalnum() else f"{base}{primes}_({sub})"


class _TextStrPrinter(sp.printing.str.StrPrinter):
    """SymPy's str, with ``min``/``max`` as a blackboard writes them (not ``Min``/``Max``)."""

    def _print_Min(self, e):
        return "min(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_Max(self, e):
        return "max(" + ", ".join(self._print(a) for a in e.args) + ")"


def _text_str(e: Any) -> str:
    return _TextStrPrinter().doprint(e)


@functools.lru_cache(maxsize=8192)
def _scalar(e: sp.Expr, style: str) -> str:
    if style == "latex":
        return sp.latex(e)
    if style == "text" and isinstance(e, sp.Mul) and not e.could_extract_minus_sign():
        num, den = e.as_numer_denom()
        if den == 1:  # a1 a2 a3, as on a blackboard
            return " ".join(f"({_text_str(f)})" if isinstance(f, sp.Add) else _text_str(f)
                            for f in e.as_ordered_factors())
    return _text_str(e) if style == "text" else sp.sstr(e)


def _is_negative_term(e: Any) -> bool:
    if isinstance(e, sp.MatMul):
        first = e.args[0]
        return not isinstance(first, sp.MatrixExpr) and first.could_extract_minus_sign()
    return False


def _negate(e: sp.MatMul) -> Any:
    first, rest = e.args[0], e.args[1:]
    first = -first
    if first == 1:
        return rest[0] if len(rest) == 1 else sp.MatMul(*rest, evaluate=False)
    return sp.MatMul(first, *rest, evaluate=False)


_U = sp.Dummy("u")


def _is_function(e: Any, body: Any) -> bool:
    """``e`` applies ``u -> body(u)`` entrywise."""
    if not isinstance(e, ElementwiseApplyFunction):
        return False
    (var,) = e.function.variables
    return e.function.expr.xreplace({var: _U}) == body


def _ones_square(e: Any) -> bool:
    return isinstance(e, sp.OneMatrix) and e.rows == e.cols


def _softmax_times_sum(e: Any) -> tuple | None:
    """``(T, A)`` when ``e`` is ``((T (.) log'(e^A 1)) 1) (.) e^A`` (1 x n rows, ``1`` the
    n x n ones matrix), which is ``sum(T) softmax(A)`` entry by entry:
    ``((T (.) 1/S) 1)_j = sum(T)/S`` with ``S = sum_i e^{A_i}``.  As a sum
    ``that - T``: ``(T, A)`` too (the softmax cross-entropy gradient); else None."""
    if isinstance(e, sp.MatAdd):
        if len(e.args) != 2:
            return None
        first, second = e.args
        found = _softmax_times_sum(first)
        if found is None or not _is_negative_term(second) or _negate(second) != found[0]:
            return None
        return found
    if not (isinstance(e, HadamardProduct) and len(e.args) == 2):
        return None
    weighted, ex = e.args
    if not (_is_function(ex, sp.exp(_U)) and ex.rows == 1):
        return None
    A = ex.expr
    if not (isinstance(weighted, sp.MatMul) and len(weighted.args) == 2 and _ones_square(weighted.args[1])):
        return None
    inner = weighted.args[0]
    if not (isinstance(inner, HadamardProduct) and len(inner.args) == 2):
        return None
    T, recip = inner.args
    if not (_is_function(recip, 1 / _U) and isinstance(recip.expr, sp.MatMul) and len(recip.expr.args) == 2):
        return None
    e_a, ones = recip.expr.args
    if not (_ones_square(ones) and _is_function(e_a, sp.exp(_U)) and e_a.expr == A):
        return None
    if T.shape != A.shape or ones.rows != A.cols:
        return None
    return T, A


class ExprPrinter:
    """Prints one SymPy (matrix) expression in one of the three styles."""

    def __init__(self, style: str = "text"):
        if style not in ("text", "sstr", "latex"):
            raise ValueError(style)
        self.style = style

    def __call__(self, e: Any) -> str:
        return self.print(e)[0]

    def paren(self, s: str) -> str:
        return rf"\left({s}\right)" if self.style == "latex" else f"({s})"

    def wrap(self, e: Any, level: int) -> str:
        s, own = self.print(e)
        return self.paren(s) if own < level else s

    def print(self, e: Any) -> tuple[str, int]:
        style = self.style
        if isinstance(e, Term):
            return self.term(e)
        if isinstance(e, sp.MatrixSymbol):
            if style == "latex":
                return symbol_latex(e.name), ATOM
            return (text_name(e.name) if style == "text" else e.name), ATOM
        if style != "sstr" and isinstance(e, sp.MatAdd):
            soft = _softmax_times_sum(e)
            if soft is not None:  # sum(T) softmax(A) - T, the cross-entropy gradient
                return self._softmax_gradient(*soft), ADD
        if style != "sstr" and isinstance(e, HadamardProduct):
            soft = _softmax_times_sum(e)
            if soft is not None:
                return self._softmax_times_sum(*soft), MUL
        if isinstance(e, sp.MatAdd):
            parts = []
            for i, t in enumerate(e.args):
                if i and _is_negative_term(t):
                    parts.append(" - " + self.wrap(_negate(t), MUL))
                else:
                    parts.append((" + " if i else "") + self.wrap(t, ADD + 1 if i else ADD))
            return "".join(parts), ADD
        if isinstance(e, sp.MatMul):
            scalars = [a for a in e.args if not isinstance(a, sp.MatrixExpr)]
            mats = [a for a in e.args if isinstance(a, sp.MatrixExpr)]
            sep = " " if style in ("text", "latex") else "*"
            pieces = []
            prefix = ""
            if scalars:
                c = sp.Mul(*scalars)
                if c == -1:
                    prefix = "-"
                elif c != 1:
                    s = _scalar(c, style)
                    if isinstance(c, sp.Add) or (c.could_extract_minus_sign() and mats):
                        s = self.paren(s)
                    pieces.append(s)
            for m in mats:
                pieces.append(self.wrap(m, MUL + 1 if isinstance(m, HadamardProduct) else MUL))
            return prefix + sep.join(pieces), MUL
        if isinstance(e, sp.Transpose):
            inner = self.wrap(e.arg, ATOM)
            if style == "latex":
                return inner + r"^{\top}", POW
            return inner + (".T" if style == "sstr" else "^T"), POW
        if isinstance(e, sp.MatPow):
            base = self.wrap(e.base, ATOM)
            exp = _scalar(e.exp, style)
            if style == "latex":
                return f"{base}^{{{exp}}}", POW
            return f"{base}**{exp}" if style == "sstr" else f"{base}^{exp}", POW
        if isinstance(e, HadamardPower):
            base = self.wrap(e.base, ATOM)
            exp = _scalar(e.exp, style)
            if style == "latex":
                return f"{base}^{{\\circ {exp}}}", POW
            return (f"hadamard_power({base}, {exp})" if style == "sstr" else f"{base}^(o{exp})"), POW
        if isinstance(e, HadamardProduct):
            if style == "sstr":
                return "hadamard(" + ", ".join(self(a) for a in e.args) + ")", ATOM
            op = r" \odot " if style == "latex" else " ⊙ "
            return op.join(self.wrap(a, MUL + 1) for a in e.args), MUL
        if isinstance(e, sp.Identity):
            if style == "latex":
                return r"\mathbf{I}", ATOM
            return (f"eye({_scalar(e.rows, style)})" if style == "sstr" else "I"), ATOM
        if isinstance(e, sp.ZeroMatrix):
            if style == "latex":
                return r"\mathbf{0}", ATOM
            return (f"zeros({_scalar(e.rows, style)}, {_scalar(e.cols, style)})" if style == "sstr" else "0"), ATOM
        if isinstance(e, sp.OneMatrix):
            if style == "latex":
                return r"\mathbf{1}", ATOM
            # plain text spells the shape out: a bare "1" reads as the number (``b - 1``)
            return f"ones({_scalar(e.rows, style)}, {_scalar(e.cols, style)})", ATOM
        if isinstance(e, ElementwiseApplyFunction):
            return self.function_name(e.function) + self.paren(self(e.expr)), ATOM
        if type(e).__name__ == "Grad":  # the kernel's dL/dX (not imported: printers stay views)
            loss, wrt = e.args
            if style == "latex":
                top = symbol_latex(loss.name, bold=False) if isinstance(loss, sp.MatrixSymbol) else self(loss)
                return rf"\frac{{\partial {top}}}{{\partial {self(wrt)}}}", ATOM
            if style == "sstr":
                return f"grad({self(loss)}, {self(wrt)})", ATOM
            return f"d{self.wrap(loss, ATOM)}/d{self(wrt)}", ATOM
        if isinstance(e, sp.Trace):
            name = r"\operatorname{tr}" if style == "latex" else ("trace" if style == "sstr" else "tr")
            return name + self.paren(self(e.arg)), ATOM
        if isinstance(e, sp.MatrixBase):
            rows = [[_scalar(_sympify(e[i, j]), style) for j in range(e.cols)] for i in range(e.rows)]
            if style == "latex":
                body = r" \\ ".join(" & ".join(r) for r in rows)
                return r"\begin{bmatrix}" + body + r"\end{bmatrix}", ATOM
            inner = ", ".join("[" + ", ".join(r) + "]" for r in rows)
            return ("Matrix([" + inner + "])" if style == "sstr" else "[" + inner + "]"), ATOM
        if isinstance(e, sp.Basic) and not isinstance(e, sp.MatrixExpr):
            s = _scalar(e, style)
            return s, ADD if isinstance(e, sp.Add) else (MUL if isinstance(e, sp.Mul) else ATOM)
        return str(e), ATOM

    # -- terms: what the author wrote, printed as written ------------------------
    def term(self, t: Term) -> tuple[str, int]:
        style, op, a = self.style, t.op, t.args
        if style == "sstr":
            return term_text(t), ADD
        latex = style == "latex"
        if op == "num":
            q = t.value
            if q.denominator == 1:
                return str(q.numerator), (ATOM if q >= 0 else ADD)
            if latex:
                sign = "-" if q < 0 else ""
                return rf"{sign}\frac{{{abs(q.numerator)}}}{{{q.denominator}}}", (ATOM if q >= 0 else ADD)
            return f"{q.numerator}/{q.denominator}", MUL
        if op == "const":
            return ((r"\pi" if t.value == "pi" else "e") if latex else t.value), ATOM
        if op == "sym":
            if latex:
                return symbol_latex(t.value, bold=t.is_matrix), ATOM
            return text_name(t.value), ATOM
        if op == "dim":
            return (symbol_latex(t.value, bold=False) if latex else t.value), ATOM
        if op == "var":
            return "z", ATOM
        if op == "add":
            parts = [self.wrap(a[0], ADD)]
            for x in a[1:]:
                if x.op == "neg":
                    parts.append(" - " + self.wrap(x.args[0], MUL))
                elif x.op == "num" and x.value < 0:
                    parts.append(" - " + self.term(Term("num", value=-x.value))[0])
                else:
                    parts.append(" + " + self.wrap(x, ADD + 1))
            return "".join(parts), ADD
        if op == "sub":
            return f"{self.wrap(a[0], ADD)} - {self.wrap(a[1], MUL)}", ADD
        if op == "neg":
            return "-" + self.wrap(a[0], MUL), ADD
        if op == "mul":
            sep = " "
            pieces = []
            for i, x in enumerate(a):
                level = MUL + 1 if x.op == "had" else MUL
                s_, own = self.print(x)
                if own < level or (i and x.op == "num" and x.value < 0):
                    s_ = self.paren(s_)
                pieces.append(s_)
            return sep.join(pieces), MUL
        if op == "div":
            if latex:
                return rf"\frac{{{self(a[0])}}}{{{self(a[1])}}}", ATOM
            return f"{self.wrap(a[0], MUL)}/{self.wrap(a[1], POW)}", MUL
        if op in ("pow", "hadpow"):
            base, k = self.wrap(a[0], ATOM), self(a[1])
            if op == "hadpow":
                return (f"{base}^{{\\circ {k}}}" if latex else f"{base}^(o{k})"), POW
            if latex:
                return f"{base}^{{{k}}}", POW
            return f"{base}^{self.wrap(a[1], ATOM)}", POW
        if op == "T":
            inner = self.wrap(a[0], ATOM)
            return inner + (r"^{\top}" if latex else "^T"), POW
        if op == "had":
            sign = r" \odot " if latex else " ⊙ "
            return sign.join(self.wrap(x, MUL + 1) for x in a), MUL
        if op == "prim":
            return self._prim_term(t)
        if op == "apply":
            fn = t.value
            base = fn.name
            primes = "'" * fn.order
            if base.endswith("_prime") and fn.formula is not None:  # f' of a catalogue f, named so
                base, primes = base[: -len("_prime")], "'"
            if latex:
                name = (fn.latex or (rf"\operatorname{{{base}}}" if len(base) > 1 else base)) + primes
            else:
                act = _TEXT_NAMES.get(base, base)
                name = act + primes
            args = [self(a[0])] + [self(p) for p in a[1:]]
            return name + self.paren(", ".join(args)), ATOM
        if op in ("ones", "eye", "zeros"):
            if latex:
                return {"ones": r"\mathbf{1}", "eye": r"\mathbf{I}", "zeros": r"\mathbf{0}"}[op], ATOM
            return {"ones": "1", "eye": "I", "zeros": "0"}[op], ATOM
        if op == "trace":
            name = r"\operatorname{tr}" if latex else "tr"
            return name + self.paren(self(a[0])), ATOM
        if op == "sum":
            name = r"\operatorname{sum}" if latex else "sum"
            return name + self.paren(self(a[0])), ATOM
        if op == "grad":
            if latex:
                return rf"\frac{{\partial {self.wrap(a[0], ATOM)}}}{{\partial {self(a[1])}}}", ATOM
            return f"d{self.wrap(a[0], ATOM)}/d{self(a[1])}", ATOM
        if op == "diff":
            k, v, body = t.value, self(a[1]), self(a[0])
            if latex:
                top = "d" if k == 1 else f"d^{{{k}}}"
                bottom = f"d {v}" if k == 1 else f"d {v}^{{{k}}}"
                return rf"\frac{{{top}}}{{{bottom}}}" + self.paren(body), ATOM
            return (f"d/d{v}" if k == 1 else f"d^{k}/d{v}^{k}") + self.paren(body), ATOM
        if op == "matrix":
            r, c = t.shape
            rows = [[self(a[i * c + j]) for j in range(c)] for i in range(r)]
            if latex:
                return r"\begin{bmatrix}" + r" \\ ".join(" & ".join(x) for x in rows) + r"\end{bmatrix}", ATOM
            return "[" + ", ".join("[" + ", ".join(x) + "]" for x in rows) + "]", ATOM
        return term_text(t), ATOM

    def _prim_term(self, t: Term) -> tuple[str, int]:
        name, a, latex = t.value, t.args, self.style == "latex"
        if name == "exp" and latex:
            return f"e^{{{self(a[0])}}}", POW
        if name == "sqrt" and latex:
            return rf"\sqrt{{{self(a[0])}}}", ATOM
        if name == "abs":
            return (rf"\left|{self(a[0])}\right|" if latex else f"|{self(a[0])}|"), ATOM
        if name == "heaviside":
            shown = r"\operatorname{step}" if latex else "step"
            return shown + self.paren(self(a[0])), ATOM
        if latex:
            known = {"log": r"\log", "sin": r"\sin", "cos": r"\cos", "tan": r"\tan", "tanh": r"\tanh",
                     "sinh": r"\sinh", "cosh": r"\cosh", "atan": r"\arctan", "max": r"\max", "min": r"\min"}
            shown = known.get(name, rf"\operatorname{{{name}}}")
        else:
            shown = name
        return shown + self.paren(", ".join(self(x) for x in a)), ATOM

    def _softmax_times_sum(self, T: Any, A: Any) -> str:
        """``sum(T) softmax(A)``: the same expression, in the notation a textbook uses."""
        if self.style == "latex":
            return (r"\operatorname{sum}" + self.paren(self(T)) + r" \operatorname{softmax}" + self.paren(self(A)))
        return f"sum{self.paren(self(T))} softmax{self.paren(self(A))}"

    def _softmax_gradient(self, T: Any, A: Any) -> str:
        return f"{self._softmax_times_sum(T, A)} - {self.wrap(T, MUL)}"

    def function_name(self, lam: sp.Lambda) -> str:
        act = describe(lam.expr)
        if act is None:
            # the catalogue formulas are written in Z; a Lambda may use another variable
            from symnet.networks.activations import Z

            (var,) = lam.variables
            act = describe(lam.expr.xreplace({var: Z}))
        if act is None:  # f' of a catalogue activation f: print "tanh'"
            from symnet.networks.activations import Z

            (var,) = lam.variables
            act = describe_derivative(lam.expr.xreplace({var: Z}))
            if act is not None:
                name = act.latex_name if self.style == "latex" else (
                    act.spec if self.style == "sstr" else act.text_name)
                return name + "'"
        if act is not None:
            if self.style == "latex":
                return act.latex_name
            return act.spec if self.style == "sstr" and act.params else act.text_name if self.style == "text" else act.name
        (var,) = lam.variables
        body_expr = lam.expr
        if isinstance(body_expr, sp.Function) and body_expr.args == (var,):
            # a plain function of the variable: exp(A), f(A)
            if self.style == "latex":
                return sp.latex(body_expr.func(sp.Symbol("_"))).split(r"{\left(")[0].split(r"\left(")[0].split("(")[0]
            return str(body_expr.func)
        body = _scalar(lam.expr, self.style)
        if self.style == "latex":
            return rf"\left({sp.latex(var)} \mapsto {body}\right)"
        return f"({var} -> {body})"


text = ExprPrinter("text")
sstr = ExprPrinter("sstr")
latex = ExprPrinter("latex")


# ---------------------------------------------------------------------------
# Derivations


def _matrix_names(derivation: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    for chain in derivation.chains:
        exprs = [chain.lhs, *(s.expr for s in chain.steps)]
        exprs += [x for pair in chain.where for x in pair]
        for e in exprs:
            if isinstance(e, sp.Basic):
                for m in e.atoms(sp.MatrixSymbol):
                    names[m.name] = symbol_latex(m.name)
    return names


@functools.lru_cache(maxsize=64)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    """One pattern for every name (longest first), matching whole names only."""
    if not names:
        return None
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(r"(?<![A-Za-z0-9_'{])(" + alts + r")(?![A-Za-z0-9_'{])")


def _rename(reason: str, names: dict[str, str]) -> list[tuple[bool, str]]:
    """``reason`` cut into (is a name, piece); names are replaced by ``names[name]``."""
    pattern = _names_pattern(tuple(names))
    if pattern is None or not reason:
        return [(False, reason)] if reason else []
    out, at = [], 0
    for m in pattern.finditer(reason):
        if m.start() > at:
            out.append((False, reason[at:m.start()]))
        out.append((True, names[m.group(1)]))
        at = m.end()
    if at < len(reason):
        out.append((False, reason[at:]))
    return out


def reason_latex(reason: str, names: dict[str, str]) -> str:
    """A reason in ``\\text{...}``, with matrix names in it typeset as math."""
    out = []
    for is_name, piece in _rename(reason, names):
        if is_name:
            out.append(piece)
        elif piece.strip():
            out.append(r"\text{" + _tex_escape(piece) + "}")
    return " ".join(out)


def reason_text(reason: str, names: dict[str, str]) -> str:
    """A reason in plain text, with matrix names as :func:`text_name` shows them."""
    return "".join(piece for _, piece in _rename(reason, names))


def _text_names(derivation: Any) -> dict[str, str]:
    """Matrix names whose plain-text form differs from the name (``W'_{1}``)."""
    return {name: text_name(name) for name in _matrix_names(derivation) if text_name(name) != name}


def _where_text(chain: Any, printer: ExprPrinter) -> str:
    """The ``with`` definitions; in plain text long ones are abbreviated (:func:`abbreviate`)."""
    show = abbreviate if printer is text else printer
    return ", ".join(f"{printer(sym)} = {show(expr)}" for sym, expr in chain.where)


def derivation_text(derivation: Any) -> str:
    """A plain-text view: one line per step, reasons and verdicts in columns."""
    lines = []
    renames = _text_names(derivation)
    if derivation.title:
        lines.append(derivation.title)
        lines.append("=" * len(derivation.title))
    for chain in derivation.chains:
        if chain.title:
            lines += ["", reason_text(chain.title, renames)]
        lhs = text(chain.lhs)
        exprs = [text(s.expr) for s in chain.steps]
        width = min(max([len(lhs) + 3 + len(e) for e in exprs[:1]] + [len(lhs) + 3 + len(e) for e in exprs], default=0), 72)
        for i, (step, expr) in enumerate(zip(chain.steps, exprs)):
            head = f"{lhs} = {expr}" if i == 0 else " " * len(lhs) + f" = {expr}"
            tail = f"  {reason_text(step.reason, renames)}" if step.reason else ""
            mark = "" if step.verdict == "proved" else f"  [{step.verdict.upper()}]"
            lines.append(f"{head.ljust(width)}{tail}{mark}".rstrip())
            if step.verdict != "proved" and step.check.detail:
                lines.append(" " * (len(lhs) + 3) + f"-> {step.check.detail}")
        if chain.where:
            lines.append(" " * (len(lhs) + 3) + "with " + _where_text(chain, text))
    for note in derivation.notes:
        lines += ["", reason_text(note, renames)]
    lines += ["", _summary(derivation)]
    return "\n".join(lines)


def _summary(derivation: Any) -> str:
    steps = derivation.steps
    if not steps:
        return "No steps to check."
    counts = {v: sum(1 for s in steps if s.verdict == v) for v in ("proved", "refuted", "unproved")}
    trials = sum(s.check.numeric.trials for s in steps)
    if counts["proved"] == len(steps):
        return (f"All {len(steps)} steps proved by the symnet kernel "
                f"and cross-checked numerically ({trials} random instances).")
    parts = [f"{n} {v}" for v, n in counts.items() if n]
    return f"Verdict: {derivation.verdict} ({', '.join(parts)} of {len(steps)} steps)."


#: LaTeX source length beyond which a step's reason, or each definition, gets a line
LONG_LINE = 220


def _align_lines(chain: Any, names: dict[str, str]) -> list[str]:
    lhs = latex(chain.lhs)
    lines = []
    for i, step in enumerate(chain.steps):
        left = lhs + " &= " if i == 0 else "&= "
        reason = reason_latex(step.reason, names)
        if step.verdict != "proved":
            reason = (reason + r" \quad " if reason else "") + r"\text{(" + step.verdict + ")}"
        body = latex(step.expr)
        if reason and len(body) > LONG_LINE:  # the reason on a line of its own
            lines += [left + body, r"&\qquad " + reason]
        else:
            lines.append(left + body + (r" && " + reason if reason else ""))
    if chain.where:
        defs = [f"{latex(s)} = {latex(e)}" for s, e in chain.where]
        if len(defs) <= 2 and sum(map(len, defs)) <= LONG_LINE:
            lines.append(r"&\qquad \text{with } " + r",\quad ".join(defs))
        else:  # one definition a line
            lines.append(r"&\qquad \text{with } " + defs[0] + ",")
            lines += [r"&\qquad \phantom{\text{with }} " + d + ("," if i < len(defs) - 1 else "")
                      for i, d in enumerate(defs[1:], 1)]
    return lines


def derivation_latex(derivation: Any, standalone: bool = False) -> str:
    """An ``align*`` block per chain (chain titles as ``\\text`` lines)."""
    names = _matrix_names(derivation)
    blocks = []
    for chain in derivation.chains:
        lines = _align_lines(chain, names)
        if chain.title:
            lines.insert(0, r"&\text{" + _tex_escape(chain.title) + r"}")
        blocks.append("\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}")
    body = "\n".join(blocks)
    if not standalone:
        return body
    title = _tex_escape(derivation.title or "symnet derivation")
    notes = "\n\n".join(_tex_escape(n) for n in derivation.notes)
    return (
        "\\documentclass{article}\n\\usepackage{amsmath,amssymb,bm}\n"
        "\\usepackage[margin=2cm]{geometry}\n\\begin{document}\n"
        f"\\section*{{{title}}}\n{body}\n{notes}\n\n{_tex_escape(_summary(derivation))}\n\\end{{document}}\n"
    )


def derivation_markdown(derivation: Any) -> str:
    """Markdown: a heading, a ``$$`` block per chain, notes and the verdict summary."""
    names = _matrix_names(derivation)
    out = []
    if derivation.title:
        out += [f"## {derivation.title}", ""]
    for chain in derivation.chains:
        if chain.title:
            out += [f"**{chain.title}**", ""]
        out += ["$$", "\\begin{aligned}", " \\\\\n".join(_align_lines(chain, names)), "\\end{aligned}", "$$", ""]
        for step in chain.steps:
            if step.verdict != "proved":
                out.append(f"- step `{text(step.expr)}`: **{step.verdict}** ({step.check.detail})")
    for note in derivation.notes:
        out += [note, ""]
    out.append(f"*{_summary(derivation)}*")
    return "\n".join(out) + "\n"


def step_dict(step: Any) -> dict:
    check = step.check
    return {
        "expr": sstr(step.expr),
        "latex": latex(step.expr),
        "reason": step.reason,
        "verdict": step.verdict,
        "detail": check.detail,
        "numeric": {"trials": check.numeric.trials, "max_abs_error": check.numeric.max_abs_error},
        "counterexample": check.counterexample,
    }


def derivation_dict(derivation: Any) -> dict:
    """A JSON-ready dict: verdict, flattened steps, and chains as step ranges."""
    steps, chains = [], []
    for chain in derivation.chains:
        first = len(steps)
        steps += [step_dict(s) for s in chain.steps]
        chains.append({
            "title": chain.title,
            "lhs": sstr(chain.lhs),
            "lhs_latex": latex(chain.lhs),
            "verdict": chain.verdict,
            "steps": [first, len(steps) - 1],
            "where": [{"name": sstr(s), "expr": sstr(e), "latex": latex(e)} for s, e in chain.where],
        })
    return {
        "title": derivation.title,
        "verdict": derivation.verdict,
        "steps": steps,
        "chains": chains,
        "notes": list(derivation.notes),
    }


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2)


# ---------------------------------------------------------------------------
# Long expressions in plain text

#: Plain-text expressions longer than this are abbreviated (``W1 W2 ... W100``);
#: the JSON output keeps every term.
LONG = 160


def _abbrev_product(e: Any, printer: ExprPrinter) -> str:
    if not isinstance(e, sp.MatMul):
        return printer.wrap(e, ADD + 1)
    mats = [a for a in e.args if isinstance(a, sp.MatrixExpr)]
    if len(mats) <= 4:
        return printer(e)
    scalars = [a for a in e.args if not isinstance(a, sp.MatrixExpr)]
    head = printer(sp.MatMul(*scalars, *mats[:2], evaluate=False)) if scalars else " ".join(
        printer.wrap(m, MUL) for m in mats[:2])
    return f"{head} ... {printer.wrap(mats[-1], MUL)}"


def abbreviate(e: Any, limit: int = LONG) -> str:
    """The plain text of ``e``, or for a long sum or product an abbreviation:
    ``W1 W2 ... W100``, ``b1 W2 ... W100 + b2 W3 ... W100 + ... + b100 (100 terms)``."""
    full = text(e)
    if len(full) <= limit:
        return full
    if isinstance(e, sp.MatAdd):
        terms = list(e.args)
        shown = terms if len(terms) <= 4 else terms[:2] + [None] + terms[-1:]
        parts = []
        for i, t in enumerate(shown):
            if t is None:
                parts.append(" + ...")
            elif i and _is_negative_term(t):
                parts.append(" - " + _abbrev_product(_negate(t), text))
            else:
                parts.append((" + " if i else "") + _abbrev_product(t, text))
        return "".join(parts) + f" ({len(terms)} terms)"
    if isinstance(e, sp.MatMul):
        return _abbrev_product(e, text)
    return full


# ---------------------------------------------------------------------------
# Collapse results


def _array_text(a: Any) -> str:
    import numpy as np

    return np.array2string(np.asarray(a, dtype=float), precision=4, suppress_small=True, separator=", ")


def _num_latex(v: float) -> str:
    s = f"{v:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = rf"{mant} \cdot 10^{{{int(exp)}}}"
    return s


#: Rows and columns of a matrix shown in LaTeX before it is elided with dots.
MATRIX_SHOWN = 8


def array_latex(a: Any) -> str:
    """A NumPy array as a ``bmatrix`` (4 significant digits); big ones elided with dots."""
    import numpy as np

    a = np.atleast_2d(np.asarray(a, dtype=float))
    r, c = a.shape
    k = MATRIX_SHOWN

    def pick(n: int) -> list:
        return list(range(n)) if n <= k else list(range(k - 1)) + [None, n - 1]

    rows = []
    for i in pick(r):
        if i is None:
            rows.append(" & ".join(r"\ddots" if j is None else r"\vdots" for j in pick(c)))
        else:
            rows.append(" & ".join(r"\cdots" if j is None else _num_latex(a[i, j]) for j in pick(c)))
    return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"


def _witness_intro(w: Any) -> str:
    params = ", ".join(f"{k} = {v:g}" for k, v in w.parameters.items())
    return ("Witness that no affine map computes F (seeded, confirmed at "
            f"{w.confirmed_digits} digits){': ' + params if params else ''}")


def _witness_lines(result: Any) -> list[str]:
    w = result.witness
    if w is None:
        return []
    import numpy as np

    big = any(np.size(v) > 1000 for v in w.weights.values())
    lines = ["", _witness_intro(w) + (" (arrays of over 1000 entries abbreviated; "
                                      "--format json gives every entry)" if big else "") + ":"]
    for name, value in w.weights.items():
        lines.append(f"  {name} = " + _array_text(value).replace("\n", "\n" + " " * (len(name) + 5)))
    lines += [
        f"  t = {w.t:g}",
        f"  a = {_array_text(w.input_a)}",
        f"  b = {_array_text(w.input_b)}",
        f"  F(t a + (1-t) b)    = {_array_text(w.lhs)}",
        f"  t F(a) + (1-t) F(b) = {_array_text(w.rhs)}",
        f"  The two differ by {w.gap:.4g}: F is not affine.",
    ]
    return lines


def _segment_lines(result: Any) -> list[str]:
    net = result.network
    out = []
    for s in result.segments:
        what = f"layer {s.first}" if s.first == s.last else f"layers {s.first}..{s.last}"
        out.append(f"  affine run, {what}: {text_name(net.h(s.last).name)} = "
                   f"{text_name(net.h(s.first - 1).name)} W + b with W = {abbreviate(s.W)}, "
                   f"b = {abbreviate(s.b)}")
    return out


def _numeric_line(result: Any) -> str:
    """The numeric cross-check, judged by the relative error (an absolute one means
    nothing where entries reach 1e40); round-off below 1e-12 is shown as such, so the
    line is the same whatever BLAS summed the products (JSON has the exact values)."""
    from symnet.networks.collapse import REL_TOL

    rel = result.numeric_max_rel_error
    shown = "< 1e-12" if rel < 1e-12 else f"{rel:.3g}"
    line = (f"Numeric cross-check against a NumPy forward pass: {result.numeric_trials} trials, "
            f"max relative error {shown} (tolerance {REL_TOL:g}).")
    if result.numeric_trials == 0:
        line = "Numeric cross-check against a NumPy forward pass: no trial could be evaluated (overflow)."
    if not result.numeric_ok:
        line += " FAILED: the collapsed map does not reproduce the forward pass."
    return line


def widths_label(widths: Any) -> str:
    """``3-4-4-2``; a long list abbreviated: ``10-10-10-...-10-10 (101 widths)``."""
    ws = [str(w) for w in widths]
    if len(ws) <= 8:
        return "-".join(ws)
    return "-".join(ws[:3]) + "-...-" + "-".join(ws[-2:]) + f" ({len(ws)} widths)"


def _runs(names: list[str]) -> str:
    """``relu, relu, relu, identity`` -> ``relu (layers 1-3), identity``; all the same: one name."""
    if len(set(names)) == 1 and len(names) > 1:
        return f"{names[0]} (every layer)"
    if len(names) <= 8:
        return ", ".join(names)
    out, i = [], 0
    while i < len(names):
        j = i
        while j + 1 < len(names) and names[j + 1] == names[i]:
            j += 1
        out.append(names[i] if i == j else f"{names[i]} (layers {i + 1}-{j + 1})")
        i = j + 1
    return ", ".join(out)


def collapse_heading(result: Any) -> str:
    net = result.network
    return ("Network " + widths_label(net.widths) + ", activations "
            + _runs([layer.activation.spec for layer in net.layers]))


def collapse_text(result: Any) -> str:
    """The text view of a collapse: the derivation, the verdict, segments and witness."""
    lines = [collapse_heading(result), "", derivation_text(result.derivation), ""]
    if result.collapsible:
        lines += [f"Collapsible: y = x W' + b' with W' = {abbreviate(result.W)}",
                  f"                            b' = {abbreviate(result.b)}",
                  _numeric_line(result)]
    else:  # the derivation's note says why it is not collapsible
        lines.append("Affine runs, each collapsed above:" if result.segments else "No run of affine layers.")
        lines += _segment_lines(result)
    lines += _witness_lines(result)
    return "\n".join(lines) + "\n"


def _segment_latex_lines(result: Any) -> list[str]:
    net = result.network
    out = []
    for s in result.segments:
        what = f"layer {s.first}" if s.first == s.last else f"layers {s.first} to {s.last}"
        out.append(rf"{latex(net.h(s.last))} &= {latex(net.h(s.first - 1))} \mathbf{{W}} + \mathbf{{b}}"
                   rf" && \text{{affine run, {what}}} \\"
                   "\n" + rf"&\qquad \text{{with }} \mathbf{{W}} = {latex(s.W)},\quad \mathbf{{b}} = {latex(s.b)}")
    return out


def _witness_latex_lines(w: Any) -> list[str]:
    lines = [rf"{symbol_latex(name)} &= {array_latex(v)}" for name, v in w.weights.items()]
    lines += [
        rf"t &= {w.t:g}",
        rf"\mathbf{{a}} &= {array_latex(w.input_a)}",
        rf"\mathbf{{b}} &= {array_latex(w.input_b)}",
        rf"F\left(t \mathbf{{a}} + (1-t) \mathbf{{b}}\right) &= {array_latex(w.lhs)}",
        rf"t F(\mathbf{{a}}) + (1-t) F(\mathbf{{b}}) &= {array_latex(w.rhs)}",
    ]
    return lines


def _collapse_parts_latex(result: Any, env: str) -> list[str]:
    """The result after the derivation, as LaTeX paragraphs and ``env`` blocks."""
    out = []

    def block(lines: list[str]) -> str:
        return f"\\begin{{{env}}}\n" + " \\\\\n".join(lines) + f"\n\\end{{{env}}}"

    if result.collapsible:
        out.append(r"\noindent Collapsible: $\mathbf{y} = \mathbf{x} \mathbf{W}' + \mathbf{b}'$ "
                   r"with $\mathbf{W}'$, $\mathbf{b}'$ as above. " + _tex_escape(_numeric_line(result)))
    else:
        out.append(r"\noindent " + ("Affine runs, each collapsed above:" if result.segments
                                     else "No run of affine layers."))
        if result.segments:
            out.append(block(_segment_latex_lines(result)))
    w = result.witness
    if w is not None:
        out.append(r"\noindent " + _tex_escape(_witness_intro(w)) + ":")
        out.append(block(_witness_latex_lines(w)))
        out.append(r"\noindent " + _tex_escape(f"The two differ by {w.gap:.4g}: F is not affine."))
    return out


def collapse_latex(result: Any, standalone: bool = False) -> str:
    """LaTeX of the whole result: the derivation (``align*``), its notes, the verdict,
    the affine runs and the witness with its weights.  ``standalone``: a complete document."""
    d = result.derivation
    parts = [derivation_latex(d)] if d.chains else []
    parts += [r"\noindent " + _tex_escape(n) for n in d.notes]
    parts.append(r"\noindent " + _tex_escape(_summary(d)))
    parts += _collapse_parts_latex(result, "align*")
    body = "\n\n".join(p for p in parts if p)
    if not standalone:
        return body + "\n"
    return latex_document(_tex_escape(d.title or "symnet collapse"),
                          _tex_escape(collapse_heading(result)) + "\n\n" + body)


def latex_document(title: str, body: str) -> str:
    """A complete LaTeX document around ``body`` (compiles with pdflatex)."""
    return (
        "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{amsmath,amssymb}\n"
        "\\usepackage[margin=2cm]{geometry}\n\\setcounter{MaxMatrixCols}{20}\n"
        "\\allowdisplaybreaks\n\\begin{document}\n"
        f"\\section*{{{title}}}\n{body}\n\\end{{document}}\n"
    )


def collapse_markdown(result: Any) -> str:
    """Markdown: the derivation's Markdown, the verdict, the affine runs and the witness."""
    out = [f"*{collapse_heading(result)}*", "", derivation_markdown(result.derivation).rstrip("\n"), ""]
    if result.collapsible:
        out += ["**Collapsible:** $\\mathbf{y} = \\mathbf{x} \\mathbf{W}' + \\mathbf{b}'$ with "
                "$\\mathbf{W}'$, $\\mathbf{b}'$ as above. " + _numeric_line(result), ""]
    else:
        out += ["Affine runs, each collapsed above:" if result.segments else "No run of affine layers.", ""]
        if result.segments:
            out += ["$$", "\\begin{aligned}", " \\\\\n".join(_segment_latex_lines(result)),
                    "\\end{aligned}", "$$", ""]
    w = result.witness
    if w is not None:
        out += [f"**{_witness_intro(w)}:**", "", "$$", "\\begin{aligned}",
                " \\\\\n".join(_witness_latex_lines(w)), "\\end{aligned}", "$$", "",
                f"The two differ by {w.gap:.4g}: F is not affine.", ""]
    return "\n".join(out)
