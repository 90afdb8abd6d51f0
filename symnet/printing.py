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

from .activations import describe, describe_derivative
from .kernel.printer import text as term_text
from .kernel.terms import Term

#: Text names of catalogue functions as a blackboard shows them.
_TEXT_NAMES = {"sigmoid": "σ", "identity": "id"}

ADD, MUL, POW, ATOM = 1, 2, 3, 4

_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega",
}
_NAME = re.compile(r"^([A-Za-z]+?)('*)(?:([0-9]+)|_([A-Za-z0-9]+))?('*)$")
_BRACED = re.compile(r"^([A-Za-z]+?)('*)_\{([A-Za-z0-9+\-.]*)\}$")


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
def _scalar(e: sp.Expr, style: str) -> str:
    if style == "latex":
        return sp.latex(e)
    if style == "text" and isinstance(e, sp.Mul) and not e.could_extract_minus_sign():
        num, den = e.as_numer_denom()
        if den == 1:  # a1 a2 a3, as on a blackboard
            return " ".join(f"({sp.sstr(f)})" if isinstance(f, sp.Add) else sp.sstr(f) for f in e.as_ordered_factors())
    return sp.sstr(e)


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
            return (symbol_latex(e.name) if style == "latex" else e.name), ATOM
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
            return (f"ones({_scalar(e.rows, style)}, {_scalar(e.cols, style)})" if style == "sstr" else "1"), ATOM
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
            return t.value, ATOM
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
            primes = "'" * fn.order
            if latex:
                name = (fn.latex or (rf"\operatorname{{{fn.name}}}" if len(fn.name) > 1 else fn.name)) + primes
            else:
                act = _TEXT_NAMES.get(fn.name, fn.name)
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

    def function_name(self, lam: sp.Lambda) -> str:
        act = describe(lam.expr)
        if act is None:
            # the catalogue formulas are written in Z; a Lambda may use another variable
            from .activations import Z

            (var,) = lam.variables
            act = describe(lam.expr.xreplace({var: Z}))
        if act is None:  # f' of a catalogue activation f: print "tanh'"
            from .activations import Z

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


_WORD = re.compile(r"([A-Za-z][A-Za-z0-9_']*)")


def reason_latex(reason: str, names: dict[str, str]) -> str:
    """A reason in ``\\text{...}``, with matrix names in it typeset as math."""
    if not reason:
        return ""
    out, buf = [], []
    for piece in _WORD.split(reason):
        if piece in names:
            if "".join(buf):
                out.append(r"\text{" + _tex_escape("".join(buf)) + "}")
            buf = []
            out.append(names[piece])
        else:
            buf.append(piece)
    if "".join(buf):
        out.append(r"\text{" + _tex_escape("".join(buf)) + "}")
    return " ".join(out)


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                 ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}"), ("~", r"\~{}")):
        s = s.replace(a, b)
    return s


def _where_text(chain: Any, printer: ExprPrinter) -> str:
    return ", ".join(f"{printer(sym)} = {printer(expr)}" for sym, expr in chain.where)


def derivation_text(derivation: Any) -> str:
    """A plain-text view: one line per step, reasons and verdicts in columns."""
    lines = []
    if derivation.title:
        lines.append(derivation.title)
        lines.append("=" * len(derivation.title))
    for chain in derivation.chains:
        if chain.title:
            lines += ["", chain.title]
        lhs = text(chain.lhs)
        exprs = [text(s.expr) for s in chain.steps]
        width = min(max([len(lhs) + 3 + len(e) for e in exprs[:1]] + [len(lhs) + 3 + len(e) for e in exprs], default=0), 72)
        for i, (step, expr) in enumerate(zip(chain.steps, exprs)):
            head = f"{lhs} = {expr}" if i == 0 else " " * len(lhs) + f" = {expr}"
            tail = f"  {step.reason}" if step.reason else ""
            mark = "" if step.verdict == "proved" else f"  [{step.verdict.upper()}]"
            lines.append(f"{head.ljust(width)}{tail}{mark}".rstrip())
            if step.verdict != "proved" and step.check.detail:
                lines.append(" " * (len(lhs) + 3) + f"-> {step.check.detail}")
        if chain.where:
            lines.append(" " * (len(lhs) + 3) + "with " + _where_text(chain, text))
    for note in derivation.notes:
        lines += ["", note]
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


def _align_lines(chain: Any, names: dict[str, str]) -> list[str]:
    lhs = latex(chain.lhs)
    lines = []
    for i, step in enumerate(chain.steps):
        left = lhs + " &= " if i == 0 else "&= "
        reason = reason_latex(step.reason, names)
        if step.verdict != "proved":
            reason = (reason + r" \quad " if reason else "") + r"\text{(" + step.verdict + ")}"
        lines.append(left + latex(step.expr) + (r" && " + reason if reason else ""))
    if chain.where:
        defs = r",\quad ".join(f"{latex(s)} = {latex(e)}" for s, e in chain.where)
        lines.append(r"&\qquad \text{with } " + defs)
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
# Collapse results


def _array_text(a: Any) -> str:
    import numpy as np

    return np.array2string(np.asarray(a, dtype=float), precision=4, suppress_small=True, separator=", ")


def _witness_lines(result: Any) -> list[str]:
    w = result.witness
    if w is None:
        return []
    t = w.t
    return [
        "",
        f"Witness (C3): with the weights in the JSON output (seeded), t = {t:g},",
        f"  a = {_array_text(w.input_a)}",
        f"  b = {_array_text(w.input_b)}",
        f"  F(t a + (1-t) b)    = {_array_text(w.lhs)}",
        f"  t F(a) + (1-t) F(b) = {_array_text(w.rhs)}",
        f"  the two differ by {w.gap:.4g} (confirmed at {w.confirmed_digits} digits): no affine map computes F.",
    ]


def collapse_text(result: Any) -> str:
    """The text view of a collapse: the derivation, the verdict, segments and witness."""
    net = result.network
    head = [
        "Network " + "-".join(str(w) for w in net.widths) + ", activations "
        + ", ".join(layer.activation.spec for layer in net.layers),
        "",
    ]
    body = derivation_text(result.derivation)
    tail = []
    if result.collapsible:
        tail += ["", f"Collapsible: y = x W' + b' with W' = {text(result.W)}", f"  b' = {text(result.b)}"]
        tail.append(f"Numeric cross-check against a NumPy forward pass: {result.numeric_trials} trials, "
                    f"max abs error {result.numeric_max_abs_error:.3g}.")
    else:
        tail += ["", "Not collapsible."]
        for s in result.segments:
            out, inp = net.h(s.last).name, net.h(s.first - 1).name
            tail.append(f"  affine run, layers {s.first}..{s.last}: {out} = {inp} W + b with "
                        f"W = {text(s.W)}, b = {text(s.b)}")
    tail += _witness_lines(result)
    return "\n".join(head) + body + "\n".join(tail) + "\n"


def collapse_markdown(result: Any) -> str:
    """Markdown: the derivation's Markdown plus the witness as a small table."""
    out = [derivation_markdown(result.derivation)]
    w = result.witness
    if w is not None:
        out += [
            "",
            "| | value |",
            "|---|---|",
            f"| t | {w.t:g} |",
            f"| a | `{_array_text(w.input_a)}` |",
            f"| b | `{_array_text(w.input_b)}` |",
            f"| F(t a + (1-t) b) | `{_array_text(w.lhs)}` |",
            f"| t F(a) + (1-t) F(b) | `{_array_text(w.rhs)}` |",
            "",
            "*Numeric witness (evidence, confirmed at 50 digits): no affine map computes this network.*",
        ]
    return "\n".join(out) + "\n"
