"""Terms as text in the notation of ``.deriv`` files (for messages and conditions)."""

from __future__ import annotations

from fractions import Fraction

from .terms import Term

# binding strength: higher binds tighter
_PREC = {"add": 1, "sub": 1, "neg": 2, "mul": 3, "div": 3, "pow": 5, "hadpow": 5}
_REL = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def _num(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def _prec(t: Term) -> int:
    if t.op == "num" and (t.value.denominator != 1 or t.value < 0):
        return 3 if t.value >= 0 else 2
    return _PREC.get(t.op, 9)


def text(t: Term) -> str:
    """``t`` as it would be written in a ``.deriv`` file."""
    op, a = t.op, t.args

    def sub(x: Term, at_least: int) -> str:
        s = text(x)
        return f"({s})" if _prec(x) < at_least else s

    if op == "num":
        return _num(t.value)
    if op == "const":
        return t.value
    if op == "sym":
        return t.value
    if op == "var":
        return "z"
    if op == "param":
        return f"p{t.value}"
    if op == "add":
        out = text(a[0])
        for x in a[1:]:
            if x.op == "neg":
                out += " - " + sub(x.args[0], 2)
            else:
                out += " + " + sub(x, 1)
        return out
    if op == "sub":
        return f"{sub(a[0], 1)} - {sub(a[1], 2)}"
    if op == "neg":
        return "-" + sub(a[0], 3)
    if op == "mul":
        return "*".join(sub(x, 3) for x in a)
    if op == "div":
        return f"{sub(a[0], 3)}/{sub(a[1], 4)}"
    if op in ("pow", "hadpow"):
        body = f"{sub(a[0], 6)}**{sub(a[1], 6)}"
        return body if op == "pow" else f"hadamard_power({text(a[0])}, {text(a[1])})"
    if op == "T":
        return f"{sub(a[0], 9)}.T"
    if op == "had":
        return "hadamard(" + ", ".join(text(x) for x in a) + ")"
    if op == "prim":
        return f"{t.value}(" + ", ".join(text(x) for x in a) + ")"
    if op == "apply":
        fn = t.value
        name = fn.name + ("'" * fn.order if fn.order <= 3 else f"^({fn.order})")
        return f"{name}(" + ", ".join(text(x) for x in a) + ")"
    if op in ("ones", "zeros"):
        return f"{op}({t.shape[0]}, {t.shape[1]})"
    if op == "eye":
        return f"eye({t.shape[0]})"
    if op in ("trace", "sum", "norm", "det", "inv", "diag"):
        return f"{op}({text(a[0])})"
    if op in ("jacobian", "hessian"):
        return f"{op}({text(a[0])}, {text(a[1])})"
    if op == "grad":
        return f"grad({text(a[0])}, {text(a[1])})"
    if op == "diff":
        return f"diff({text(a[0])}, {text(a[1])}" + (f", {t.value})" if t.value != 1 else ")")
    if op == "matrix":
        r, c = t.shape
        rows = ["[" + ", ".join(text(a[i * c + j]) for j in range(c)) + "]" for i in range(r)]
        return "[" + ", ".join(rows) + "]"
    if op == "piecewise":
        pieces = [f"({text(a[i])}, {text(a[i + 1])})" for i in range(0, len(a), 2)]
        return "piecewise(" + ", ".join(pieces) + ")"
    if op in _REL:
        return f"{text(a[0])} {_REL[op]} {text(a[1])}"
    if op == "true":
        return "true"
    if op == "not":
        return f"not ({text(a[0])})"
    if op in ("and", "or"):
        return f" {op} ".join(f"({text(x)})" for x in a)
    return f"<{op}>"
