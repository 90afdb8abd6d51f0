"""A NumPy code printer for symnet's matrix expressions, batched over examples.

``sympy.lambdify`` cannot print elementwise matrix functions, and it knows
nothing of batches.  This printer turns a *program* (named assignments such as
``z1 = x W1 + b1``, ``h1 = tanh(z1)``, ``delta1 = (delta2 W2^T) (.) tanh'(z1)``
and outputs such as ``dL/dW1 = x^T delta1``), written for one example in the
row-vector convention, into Python source for a whole batch.

Every value has a *layout* saying how a batch of N examples stores it:

* ``shared``  the same for every example (a parameter, a constant), stored as is;
* ``rows``    a 1 x c row per example, stored N x c (``x``, ``h_l``, ``delta_l``);
* ``cols``    an r x 1 column per example, stored transposed as N x r (``h^T``);
* ``summed``  an r x c matrix per example, stored as the sum over the batch
  (``h^T delta`` becomes one matrix product ``H^T D``); only linear operations
  may follow.

The layouts fix how each product is printed (``H @ W``, ``D.T``-free outer
sums, row-wise inner products ``np.sum(A * B, axis=1)``), so gradients come out
summed over the batch with the same matrix products a hand-written backprop
uses.  Repeated subexpressions are computed once (a small matrix-level CSE), and
``f'(z)`` reuses ``h = f(z)`` when that is cheaper and exact.  Catalogue activations
whose printed formula overflows or cancels somewhere (``silu'`` at z = -800, ``sinc'(0)``,
``tanh'`` for |z| > 19, softplus at z = 800) run a stable NumPy form instead
(:data:`STABLE_FORMS`), and softmax cross-entropy's ``log(e^y 1)`` and its gradient are
computed with the log-sum-exp max shift.

Compiling runs ``exec`` on source this module generated from SymPy trees, never
on user text; that call lives in :func:`_exec_generated` alone.
"""

from __future__ import annotations

import keyword
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.sympify import _sympify
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

from symnet.errors import ShapeError, SymnetError

SHARED, ROWS, COLS, SUMMED = "shared", "rows", "cols", "summed"

#: Conventions for f' at the kinks of catalogue activations in compiled code: symnet's own
#: (the derived one, the kernel's, e.g. relu'(0) = 0, leaky_relu'(0) = 1), or what PyTorch's
#: or JAX's autograd returns there (leaky_relu'(0) = alpha in PyTorch).  Numeric code only:
#: the expressions and the kernel's proofs keep symnet's convention.
KINK_CONVENTIONS = ("symnet", "torch", "jax")


class CodegenError(SymnetError):
    """An expression the batched NumPy printer cannot print."""


@dataclass(frozen=True)
class Value:
    """Printed code for a value, its batch layout and its per-example shape."""

    code: str
    layout: str
    shape: tuple


def _is_one(d: Any) -> bool:
    return _sympify(d) == 1


def _is_name(code: str) -> bool:
    return code.isidentifier()


# ---------------------------------------------------------------------------
# Scalars: SymPy formulas to NumPy source


_UNARY = {
    sp.exp: "np.exp", sp.log: "np.log", sp.tanh: "np.tanh", sp.sinh: "np.sinh",
    sp.cosh: "np.cosh", sp.sin: "np.sin", sp.cos: "np.cos", sp.tan: "np.tan",
    sp.atan: "np.arctan", sp.asinh: "np.arcsinh", sp.Abs: "np.abs", sp.sign: "np.sign",
}
_RELATIONS = {sp.StrictLessThan: "<", sp.LessThan: "<=", sp.StrictGreaterThan: ">",
              sp.GreaterThan: ">=", sp.Equality: "==", sp.Unequality: "!="}


class ScalarPrinter:
    """Prints a scalar SymPy formula as a NumPy expression; ``names`` maps symbols to code.

    Functions outside the table are compiled with ``lambdify`` (SymPy's own
    printer on a SymPy tree) and called through the namespace.
    """

    def __init__(self, names: dict, namespace: dict):
        self.names = names
        self.namespace = namespace

    def __call__(self, e: sp.Expr) -> str:
        return self.print(_sympify(e))

    def print(self, e: Any) -> str:
        if isinstance(e, sp.Symbol) or isinstance(e, sp.Dummy):
            if e not in self.names:
                raise CodegenError(f"no value for the scalar {e}")
            return self.names[e]
        if e is sp.S.true:
            return "True"
        if e is sp.S.false:
            return "False"
        if e.is_Integer:
            return repr(int(e))
        if e.is_Rational or e.is_Float:
            return repr(float(e))
        if e is sp.pi:
            return "np.pi"
        if e is sp.E:
            return "np.e"
        if e.is_Number:
            return repr(float(e))
        if isinstance(e, sp.Add):
            terms = sorted(e.args, key=lambda a: a.could_extract_minus_sign())  # positive first
            out = self.print(terms[0])
            for a in terms[1:]:
                out += f" - {self.print(-a)}" if a.could_extract_minus_sign() else f" + {self.print(a)}"
            return f"({out})"
        if isinstance(e, sp.Mul):
            if e.args[0] == -1:
                return "(-" + self.print(sp.Mul(*e.args[1:])) + ")"
            return "(" + "*".join(self.print(a) for a in e.args) + ")"
        if isinstance(e, sp.Pow):
            base, exp = self.print(e.base), e.exp
            if exp == sp.S.Half:
                return f"np.sqrt({base})"
            if exp == -1:
                return f"(1/{base})"
            if exp.is_Integer:
                return f"{base}**{int(exp)}"
            if e.base is sp.E:
                return f"np.exp({self.print(exp)})"
            return f"{base}**{self.print(exp)}"
        if type(e) in _UNARY:
            return f"{_UNARY[type(e)]}({self.print(e.args[0])})"
        if isinstance(e, (sp.Max, sp.Min)):
            fn = "np.maximum" if isinstance(e, sp.Max) else "np.minimum"
            out = self.print(e.args[0])
            for a in e.args[1:]:
                out = f"{fn}({out}, {self.print(a)})"
            return out
        if isinstance(e, sp.Heaviside):
            h0 = e.args[1] if len(e.args) > 1 else sp.S.Half  # SymPy's H(0) = 1/2
            return f"np.heaviside({self.print(e.args[0])}, {float(h0)!r})"
        if isinstance(e, sp.DiracDelta):
            if len(e.args) > 1:
                raise CodegenError(f"cannot print {e}")
            arg = self.print(e.args[0])  # zero away from 0; no finite value at 0
            return f"np.where({arg} == 0, np.inf, 0.0)"
        if isinstance(e, sp.Piecewise):
            out = None
            for expr, cond in reversed(e.args):
                if out is None:
                    out = self.print(expr) if cond is sp.S.true else f"np.where({self.print(cond)}, {self.print(expr)}, np.nan)"
                else:
                    out = f"np.where({self.print(cond)}, {self.print(expr)}, {out})"
            return out
        if type(e) in _RELATIONS:
            return f"({self.print(e.lhs)} {_RELATIONS[type(e)]} {self.print(e.rhs)})"
        if isinstance(e, sp.And):
            return "np.logical_and.reduce([" + ", ".join(self.print(a) for a in e.args) + "])"
        if isinstance(e, sp.Or):
            return "np.logical_or.reduce([" + ", ".join(self.print(a) for a in e.args) + "])"
        if isinstance(e, sp.Not):
            return f"np.logical_not({self.print(e.args[0])})"
        if isinstance(e, sp.Function):
            return self._lambdified(e)
        raise CodegenError(f"cannot print {type(e).__name__} {e}")

    def _lambdified(self, e: sp.Function) -> str:
        """A function without a table entry: SymPy's ``lambdify`` of ``f(u1, ...)``."""
        from symnet.networks import activations

        dummies = [sp.Dummy(f"u{i}") for i in range(len(e.args))]
        try:
            fn = activations.lambdify_numpy(dummies, e.func(*dummies))
        except Exception as exc:  # SymPy's printer has no NumPy form for it
            raise CodegenError(f"cannot print {e.func}: {exc}") from None
        name = f"_fn{len([k for k in self.namespace if k.startswith('_fn')])}"
        self.namespace[name] = fn
        return f"{name}(" + ", ".join(self.print(a) for a in e.args) + ")"


# ---------------------------------------------------------------------------
# Programs


@dataclass
class Program:
    """Named assignments for one example, evaluated for a batch by generated NumPy code.

    ``batched`` inputs (``x``, ``t``) hold one row per example; ``parameters``
    (``W1, b1, ...``) are shared; ``scalars`` are activation parameters.
    ``assignments`` are evaluated in order; ``outputs`` (``"W1": expr``) are
    summed over the batch; ``loss`` is the symbol of the 1x1 loss.
    """

    batched: list[sp.MatrixSymbol]
    parameters: list[sp.MatrixSymbol]
    scalars: list[sp.Symbol]
    assignments: list[tuple[sp.MatrixSymbol, sp.MatrixExpr]]
    outputs: dict[str, sp.MatrixExpr]
    loss: sp.MatrixSymbol
    _sources: dict = field(default_factory=dict, repr=False)
    kinks: str = "symnet"  # f' at kinks: one of KINK_CONVENTIONS

    def __post_init__(self) -> None:
        check_kinks(self.kinks)

    def source(self, gradients: bool = True) -> str:
        """The generated Python source of the function (named ``symnet_gradients``)."""
        if gradients not in self._sources:
            self._sources[gradients] = _Generator(self, gradients).generate()
        return self._sources[gradients][0]

    def compile(self, gradients: bool = True) -> CompiledFunction:
        """Compile the generated source: a callable taking named arrays."""
        self.source(gradients)
        source, namespace = self._sources[gradients]
        raw = _exec_generated(source, dict(namespace))
        return CompiledFunction(self, raw, source, gradients)


def check_kinks(kinks: Any) -> str:
    """``kinks`` if it names a convention of :data:`KINK_CONVENTIONS`, else a one-line error."""
    if kinks not in KINK_CONVENTIONS:
        raise SymnetError(f"unknown kink convention {kinks!r}; choose from {', '.join(KINK_CONVENTIONS)}")
    return kinks


def program_for(g: Any, kinks: str = "symnet") -> Program:
    """The program of a :class:`symnet.networks.backprop.Gradients`: forward, loss, deltas, gradients.

    ``kinks`` sets f' at the kinks of catalogue activations in the compiled code
    (:data:`KINK_CONVENTIONS`)."""
    net = g.net
    assignments = [*g.forward, (g.L, g.loss(net.y, g.t)), *g.deltas]
    return Program(
        batched=[net.x, g.t],
        parameters=list(net.parameters),
        scalars=list(g.scalar_parameters),
        assignments=assignments,
        outputs=dict(g.expressions),
        loss=g.L,
        kinks=kinks,
    )


_RESERVED = {"np", "True", "False", "None"}


class _Generator:
    def __init__(self, program: Program, gradients: bool):
        self.program = program
        self.gradients = gradients
        self.namespace: dict = {"np": np, "_rowsum": _rowsum}
        self.lines: list[str] = []
        self.values: dict = {}  # SymPy node -> Value (symbols and hoisted subexpressions)
        self.names: dict = {}  # Symbol/MatrixSymbol -> identifier
        self.taken: set = set()  # identifiers in use
        self.shared_nodes: set = set()  # subexpressions used more than once
        self.temps = 0
        self.applied: dict = {}  # argument -> [(formula in _Z, name of f(argument))]
        self.dims: dict = {}  # dimension Symbol -> code
        self.scalar = ScalarPrinter(self.names, self.namespace)
        self.forms: dict = {}  # (activation, "f"/"df", parameters) -> name of its stable form
        self.buffers: dict = {}  # placeholder -> (shape code, variable it is bound to or None)
        self.batch = self.identifier(program.batched[0]) + ".shape[0]" if program.batched else None

    # -- names -------------------------------------------------------------
    def identifier(self, sym: Any) -> str:
        if sym not in self.names:
            name = sym.name
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") \
                    or name in _RESERVED or name in self.taken:
                name = f"_v{len(self.names)}"
            self.names[sym] = name
            self.taken.add(name)
        return self.names[sym]

    def temp(self, code: str) -> str:
        self.temps += 1
        name = f"_e{self.temps}"
        self.lines.append(f"{name} = {code}")
        return name

    def dim(self, d: Any) -> str:
        d = _sympify(d)
        if d.is_Integer:
            return str(int(d))
        if d in self.dims:
            return self.dims[d]
        if d.free_symbols <= set(self.dims):
            return "(" + sp.pycode(d.xreplace({s: sp.Symbol(self.dims[s]) for s in d.free_symbols})) + ")"
        raise CodegenError(f"the dimension {d} is not the size of any input")

    # -- the program -------------------------------------------------------
    def needed(self) -> list[tuple]:
        """The assignments the requested outputs depend on, in order."""
        p = self.program
        defs = dict(p.assignments)
        roots = [p.loss] + (list(p.outputs.values()) if self.gradients else [])
        seen: set = set()
        stack = [s for r in roots for s in (r.atoms(sp.MatrixSymbol) if isinstance(r, sp.Basic) else [])]
        while stack:
            s = stack.pop()
            if s in seen or s not in defs:
                continue
            seen.add(s)
            stack.extend(defs[s].atoms(sp.MatrixSymbol))
        return [(s, e) for s, e in p.assignments if s in seen]

    def generate(self) -> tuple[str, dict]:
        p = self.program
        args = [self.identifier(s) for s in [*p.batched, *p.parameters, *p.scalars]]
        for s in p.batched:
            self.values[s] = Value(self.identifier(s), ROWS, s.shape)
        for s in p.parameters:
            self.values[s] = Value(self.identifier(s), SHARED, s.shape)
        for s in [*p.batched, *p.parameters]:  # symbolic sizes, read off the arrays
            for axis, d in enumerate(s.shape):
                for sym in sorted(_sympify(d).free_symbols, key=lambda v: v.name):
                    if sym not in self.dims and _sympify(d) == sym:
                        batch_axis = 1 if s in p.batched else axis
                        self.dims[sym] = f"_{len(self.dims)}_{sym.name}"
                        self.lines.append(f"{self.dims[sym]} = {self.identifier(s)}.shape[{batch_axis}]")
        assignments = self.needed()
        outputs = dict(p.outputs) if self.gradients else {}
        self.count([e for _, e in assignments] + list(outputs.values()))
        # each output right after the last assignment it needs, while its inputs are in cache
        position = {sym: i for i, (sym, _) in enumerate(assignments)}
        ready: dict[int, list[str]] = {}
        for key, out in outputs.items():
            symbols = out.atoms(sp.MatrixSymbol)
            if all(s in position or s in self.values for s in symbols):  # else: reported below
                ready.setdefault(max([position.get(s, -1) for s in symbols], default=-1), []).append(key)
        results: dict[str, str] = {}

        def emit(keys: list[str]) -> None:
            for key in keys:
                code = self.total(self.value(outputs.pop(key)))
                if key.isidentifier():
                    results[key] = f"_d_{key}"
                    self.lines.append(f"_d_{key} = {code}")
                else:
                    results[key] = self.temp(code)

        emit(ready.get(-1, []))
        for i, (sym, expr) in enumerate(assignments):
            name = self.identifier(sym)
            lines = self.into_buffer(expr, name)
            if lines is not None:
                self.lines.extend(lines)
                self.values[sym] = self.values[expr] = Value(name, ROWS, sym.shape)
            else:
                value = self.value(expr)
                self.lines.append(f"{name} = {value.code}")
                self.values[sym] = Value(name, value.layout, sym.shape)
            if isinstance(expr, ElementwiseApplyFunction):
                self.applied.setdefault(expr.expr, []).append((_body(expr.function), name))
            if sym == p.loss:
                results["loss"] = "_loss"
                self.lines.append(f"_loss = {self.total(self.values[sym])}")
            emit(ready.get(i, []))
        if outputs:
            raise CodegenError(f"outputs {', '.join(outputs)} use symbols with no value")
        lines = _assign_slots(self.lines, self.buffers, [*p.batched, *p.parameters], self.identifier)
        body = "\n".join("        " + line for line in _free_dead(lines, set(args) | set(results.values())))
        ret = ", ".join(f"{k!r}: {results[k]}" for k in ["loss", *p.outputs] if k in results)
        source = (
            f"def symnet_gradients({', '.join([*args, '_workspace'])}):\n"
            "    with np.errstate(all='ignore'):\n"
            f"{body}\n"
            "        return {" + ret + "}\n"
        )
        return source, self.namespace

    def total(self, v: Value) -> str:
        """The sum over the batch of a value, with the per-example shape."""
        if v.layout == SUMMED:
            return v.code
        if v.layout == ROWS:
            return f"np.sum({v.code}, axis=0, keepdims=True)"
        if v.layout == COLS:
            return f"np.sum({v.code}, axis=0)[:, None]"
        return f"({self.identifier(self.program.batched[0])}.shape[0] * {v.code})"

    def count(self, exprs: list) -> None:
        """Subexpressions used more than once are computed once (hoisted to a temporary)."""
        counts: dict = {}

        def visit(e: Any) -> None:
            if not isinstance(e, sp.MatrixExpr) or isinstance(e, sp.MatrixSymbol):
                return
            if isinstance(e, (sp.OneMatrix, sp.Identity, sp.ZeroMatrix)):
                return
            if isinstance(e, sp.Transpose) and isinstance(e.arg, sp.MatrixSymbol):
                return
            counts[e] = counts.get(e, 0) + 1
            if counts[e] == 1:
                for a in e.args:
                    visit(a)

        for e in exprs:
            visit(e)
        self.shared_nodes = {e for e, n in counts.items() if n > 1}

    # -- values ------------------------------------------------------------
    def value(self, e: Any) -> Value:
        hit = self.values.get(e)
        if hit is not None:
            return hit
        if e in self.shared_nodes:  # computed once: into a workspace buffer when it can be
            self.temps += 1
            name = f"_e{self.temps}"
            lines = self.into_buffer(e, name)
            if lines is not None:
                self.lines.extend(lines)
                self.values[e] = Value(name, ROWS, e.shape)
                return self.values[e]
        v = self.convert(e)
        if e in self.shared_nodes and not _is_name(v.code):
            v = Value(self.temp(v.code), v.layout, v.shape)
            self.values[e] = v
        return v

    def convert(self, e: Any) -> Value:
        if isinstance(e, sp.MatrixSymbol):
            raise CodegenError(f"{e.name} has no value (not an input and not assigned)")
        if isinstance(e, sp.MatAdd):
            return self.sum(e)
        if isinstance(e, HadamardProduct):
            soft = self.softmax_times_sum(e)
            if soft is not None:
                return soft
            return self.elementwise_op(e, [self.value(a) for a in e.args], " * ")
        if isinstance(e, sp.MatMul):
            return self.product(e)
        if isinstance(e, sp.Transpose):
            v = self.value(e.arg)
            shape = (v.shape[1], v.shape[0])
            if v.layout in (SHARED, SUMMED):
                return Value(f"{v.code}.T", v.layout, shape)
            layout = COLS if v.layout == ROWS else ROWS
            return Value(v.code, _normal(layout, shape), shape)
        if isinstance(e, sp.OneMatrix):
            return Value(f"np.ones(({self.dim(e.rows)}, {self.dim(e.cols)}))", SHARED, e.shape)
        if isinstance(e, sp.ZeroMatrix):
            return Value(f"np.zeros(({self.dim(e.rows)}, {self.dim(e.cols)}))", SHARED, e.shape)
        if isinstance(e, sp.Identity):
            return Value(f"np.eye({self.dim(e.rows)})", SHARED, e.shape)
        if isinstance(e, HadamardPower):
            v = self.value(e.base)
            if v.layout == SUMMED:
                raise CodegenError("a power of a batch sum")
            return Value(f"({v.code})**{self.scalar(e.exp)}", v.layout, v.shape)
        if isinstance(e, ElementwiseApplyFunction):
            return self.apply(e)
        raise CodegenError(f"cannot print {type(e).__name__}")

    def sum(self, e: sp.MatAdd) -> Value:
        """A sum, printing ``a + (-1) b`` as ``a - b``."""
        ops, parts = [], []
        for term in e.args:
            negated = _negated(term)
            ops.append(" + " if negated is None else " - ")
            parts.append(self.value(term if negated is None else negated))
        return self.elementwise_op(e, parts, ops)

    def elementwise_op(self, e: Any, parts: list[Value], ops: list[str] | str) -> Value:
        """``parts`` joined by ``ops`` (``" + "``, ``" - "`` or ``" * "``), entry by entry."""
        ops = [ops] * len(parts) if isinstance(ops, str) else ops
        layouts = {p.layout for p in parts}
        if SUMMED in layouts:  # sums of batch sums, and batch sums scaled by shared values
            linear = layouts == {SUMMED} if " * " not in ops else (
                layouts <= {SUMMED, SHARED} and sum(p.layout == SUMMED for p in parts) == 1)
            if not linear:
                raise CodegenError("a batch sum combined with per-example values")
            layout = SUMMED
        else:
            batched = layouts - {SHARED}
            if len(batched) > 1:
                raise CodegenError("rows and columns combined elementwise")
            layout = batched.pop() if batched else SHARED
        codes = [f"{p.code}.T" if layout == COLS and p.layout == SHARED else p.code for p in parts]
        first = codes[0] if ops[0] != " - " else f"-{codes[0]}"
        return Value("(" + first + "".join(o + c for o, c in zip(ops[1:], codes[1:])) + ")", layout, e.shape)

    def product(self, e: sp.MatMul) -> Value:
        coeff = sp.Mul(*[a for a in e.args if not isinstance(a, sp.MatrixExpr)])
        mats = [a for a in e.args if isinstance(a, sp.MatrixExpr) and not isinstance(a, sp.Identity)]
        if not mats:
            raise CodegenError("a product without matrices")
        acc = self.value(mats[0])
        for m in mats[1:]:
            if isinstance(m, sp.OneMatrix) and acc.layout == ROWS:
                acc = Value(f"_rowsum({acc.code}, {self.dim(m.cols)})", ROWS, (acc.shape[0], m.cols))
                continue
            acc = self.times(acc, self.value(m))
        if coeff != 1:
            acc = Value(f"({self.scalar(coeff)} * {acc.code})", acc.layout, acc.shape)
        return acc

    def times(self, a: Value, b: Value) -> Value:
        """The per-example product ``a b`` in batch layouts."""
        shape = (a.shape[0], b.shape[1])
        la, lb = a.layout, b.layout
        if la == SHARED and lb == SHARED:
            return Value(f"({a.code} @ {b.code})", SHARED, shape)
        if SUMMED in (la, lb):
            if {la, lb} <= {SUMMED, SHARED}:
                return Value(f"({a.code} @ {b.code})", SUMMED, shape)
            raise CodegenError("a batch sum multiplied by a per-example value")
        a_scalar = _is_one(a.shape[0]) and _is_one(a.shape[1])
        b_scalar = _is_one(b.shape[0]) and _is_one(b.shape[1])
        if a_scalar or b_scalar:  # a per-example number scales the other factor
            s, m = (a, b) if a_scalar else (b, a)
            if m.layout == SHARED and s.layout != SHARED:
                layout = _normal(ROWS if _is_one(m.shape[0]) else COLS, shape)
                if not (_is_one(m.shape[0]) or _is_one(m.shape[1])):
                    raise CodegenError("a per-example number times a shared matrix")
                code = m.code if layout == ROWS else f"{m.code}.T"
                return Value(f"({s.code} * {code})", layout, shape)
            return Value(f"({s.code} * {m.code})", m.layout, shape)
        if la == ROWS and lb == SHARED:
            return Value(f"({a.code} @ {b.code})", ROWS, shape)
        if la == SHARED and lb == COLS:
            return Value(f"({b.code} @ {a.code}.T)", _normal(COLS, shape), shape)
        if la == COLS and lb == ROWS:  # sum over the batch of outer products
            return Value(f"({a.code}.T @ {b.code})", SUMMED, shape)
        if la == ROWS and lb == COLS:  # row-wise inner products
            return Value(f"np.einsum('ij,ij->i', {a.code}, {b.code})[:, None]", ROWS, shape)
        raise CodegenError(f"a {la} by {lb} product with a per-example {shape[0]}x{shape[1]} result")

    # -- in place, into workspace buffers ------------------------------------
    #
    # A per-example row (an N x c array for the batch) that is a product ``h W``, a sum, a
    # Hadamard product or a NumPy ufunc of a row is written into a buffer of the compiled
    # function's workspace (``z2 = np.matmul(h1, W2, out=z2)``, then ``np.add(z2, b2,
    # out=z2)``) rather than into fresh arrays: the buffers are allocated once and kept
    # between calls, so a call makes no large temporaries (each one costs page faults when
    # first touched).  ``g (.) f'(z)`` for an activation of :data:`TIMES_DERIVATIVE` runs
    # that fused form.  Anything else is printed as an expression, as above.

    def into_buffer(self, e: Any, name: str) -> list[str] | None:
        """Lines binding ``name`` to a buffer and writing the batch of ``e`` into it, or None."""
        if self.batch is None or not isinstance(e, sp.MatrixExpr) or not _is_one(e.shape[0]):
            return None
        try:
            shape = f"({self.batch}, {self.dim(e.shape[1])})"
        except CodegenError:
            return None
        placeholder = self.buffer(shape, name)
        lines = self.write(e, name, top=True)
        if lines is None:
            del self.buffers[placeholder]
            return None
        return [f"{name} = {placeholder}", *lines]

    def buffer(self, shape: str, owner: str | None) -> str:
        """A placeholder for a workspace array of ``shape``, bound to ``owner`` (None: scratch)."""
        placeholder = f"_buf{len(self.buffers)}"
        while placeholder in self.buffers:
            placeholder += "_"
        self.buffers[placeholder] = (shape, owner)
        return placeholder

    def part(self, e: Any) -> Value:
        """The value of an operand, remembered so that falling back prints nothing twice."""
        v = self.value(e)
        self.values.setdefault(e, v)
        return v

    def write(self, e: Any, out: str, top: bool = False) -> list[str] | None:
        """Lines writing the batch of the per-example row ``e`` into ``out``, or None."""
        if not top and (e in self.values or e in self.shared_nodes):
            return None  # already has a name
        if isinstance(e, sp.MatMul):
            return self.write_product(e, out)
        if isinstance(e, sp.MatAdd):
            return self.write_sum(e, out)
        if isinstance(e, HadamardProduct):
            return self.write_hadamard(e, out)
        if isinstance(e, ElementwiseApplyFunction):
            return self.write_ufunc(e, out)
        return None

    def write_product(self, e: sp.MatMul, out: str) -> list[str] | None:
        """``h W`` (rows times a shared matrix) as one ``np.matmul`` into ``out``."""
        coeff = sp.Mul(*[a for a in e.args if not isinstance(a, sp.MatrixExpr)])
        mats = [a for a in e.args if isinstance(a, sp.MatrixExpr) and not isinstance(a, sp.Identity)]
        if len(mats) != 2 or isinstance(mats[1], sp.OneMatrix):
            return None
        a, b = self.part(mats[0]), self.part(mats[1])
        if a.layout != ROWS or b.layout != SHARED:
            return None
        lines = [f"{out} = np.matmul({a.code}, {b.code}, out={out})"]
        if coeff != 1:
            lines.append(f"{out} = np.multiply({out}, {self.scalar(coeff)}, out={out})")
        return lines

    def write_sum(self, e: sp.MatAdd, out: str) -> list[str] | None:
        """A sum of rows and shared rows, accumulated in ``out``."""
        terms = [(term, "add") if _negated(term) is None else (_negated(term), "subtract") for term in e.args]
        if terms[0][1] != "add":
            return None
        return self.accumulate([t for t, _ in terms], [op for _, op in terms], out)

    def write_hadamard(self, e: HadamardProduct, out: str) -> list[str] | None:
        """A Hadamard product, the factors ``f'(z)`` of :data:`TIMES_DERIVATIVE` applied last."""
        if self.softmax_times_sum(e) is not None:
            return None
        fused = [self.times_derivative(f) for f in e.args]
        others = [f for f, d in zip(e.args, fused) if d is None]
        if not others:
            return None
        source = out
        if len(others) > 1:
            lines = self.accumulate(others, ["multiply"] * len(others), out)
        else:
            lines = self.write(others[0], out)
        if lines is None:
            g = self.part(others[0])
            if len(others) > 1 or g.layout != ROWS or len(others) == len(e.args):
                return None
            lines, source = [], g.code  # the first fused factor reads g itself
        for helper, arg in filter(None, fused):
            scratch = self.buffer(f"({self.batch}, {self.dim(e.shape[1])})", None)
            lines.append(f"{out} = {helper}({source}, {arg}, {out}, {scratch})")
            source = out
        return lines

    def accumulate(self, terms: list, ops: list[str], out: str) -> list[str] | None:
        """``terms[0] ops[1] terms[1] ...`` (NumPy ufunc names) in ``out``: the first term
        written there, or the first two combined into it, then the rest in place.  Only
        for rows and shared rows, at least one a row."""
        lines = self.write(terms[0], out)
        start = 1
        if lines is None:
            first = self.part(terms[0])
            if len(terms) == 1:
                return None
            else:
                second = self.part(terms[1])
                if {first.layout, second.layout} - {ROWS, SHARED} or ROWS not in (first.layout, second.layout):
                    return None
                lines = [f"{out} = np.{ops[1]}({first.code}, {second.code}, out={out})"]
                start = 2
        for term, op in zip(terms[start:], ops[start:]):
            v = self.part(term)
            if v.layout not in (ROWS, SHARED):
                return None
            lines.append(f"{out} = np.{op}({out}, {v.code}, out={out})")
        return lines

    def write_ufunc(self, e: ElementwiseApplyFunction, out: str) -> list[str] | None:
        """``f(z)`` for ``f`` a NumPy ufunc of :data:`_UNARY` (``np.tanh(z1, out=h1)``)."""
        if _is_function(e.function, "log"):
            return None  # may be a log-sum-exp
        body = _body(e.function)
        if type(body) not in _UNARY or body.args != (_Z,):
            return None
        arg = self.part(e.expr)
        if arg.layout != ROWS or not _is_name(arg.code):
            return None
        if self.tabled(body, arg.code) is not None or self.at_kinks(body, arg.code, "?") != "?":
            return None
        return [f"{out} = {_UNARY[type(body)]}({arg.code}, out={out})"]

    def times_derivative(self, factor: Any) -> tuple[str, str] | None:
        """``(helper, z)`` when ``factor`` is ``f'(z)`` of an activation of
        :data:`TIMES_DERIVATIVE` (no parameters, nothing to change at kinks), z a named row."""
        if not isinstance(factor, ElementwiseApplyFunction):
            return None
        from symnet.networks.activations import Z, describe_derivative

        body = _body(factor.function)
        act = describe_derivative(body.xreplace({_Z: Z}))
        if act is None or act.name not in TIMES_DERIVATIVE or act.params:
            return None
        arg = self.part(factor.expr)
        if arg.layout != ROWS or not _is_name(arg.code) or self.at_kinks(body, arg.code, "?") != "?":
            return None
        helper = f"_times_d_{act.name}"
        self.namespace[helper] = TIMES_DERIVATIVE[act.name]
        return helper, arg.code

    def apply(self, e: ElementwiseApplyFunction) -> Value:
        arg = self.value(e.expr)
        if arg.layout == SUMMED:
            raise CodegenError("a function of a batch sum")
        lse = self.log_row_sums(e)
        if lse is not None:
            return lse
        name = arg.code if _is_name(arg.code) else self.temp(arg.code)
        body = _body(e.function)
        return Value(self.at_kinks(body, name, self.applied_code(body, e, name)), arg.layout, e.shape)

    def applied_code(self, body: sp.Expr, e: ElementwiseApplyFunction, name: str) -> str:
        """Code for ``f(name)`` elementwise, ``f`` the function of ``e`` (``body`` in _Z)."""
        tabled = self.tabled(body, name)
        if tabled is not None:
            return tabled
        if _Z not in body.free_symbols:
            # a constant function (affine with a = 0, or its derivative): a value per entry
            # of the argument, not one scalar, so the shapes downstream stay those of the matrix
            code = ScalarPrinter(self.names, self.namespace)(body)
            return f"(np.zeros_like({name}) + {code})"
        stable = self.stable(body, e.expr, name)
        if stable is not None:
            return stable
        formula, extra = self.reuse(body, e.expr)
        printer = ScalarPrinter({**self.names, _Z: name, **extra}, self.namespace)
        return printer(formula)

    def at_kinks(self, body: sp.Expr, name: str, code: str) -> str:
        """``code`` with the program's kink convention: where ``body`` is the derivative of a
        catalogue activation with kinks and the convention is PyTorch's or JAX's, the value
        that framework's autograd returns at each kink (``np.where(z == 0, alpha, ...)``)."""
        if self.program.kinks == "symnet":
            return code
        from symnet.networks.activations import Z, describe_derivative

        act = describe_derivative(body.xreplace({_Z: Z}))
        if act is None:  # not a derivative (or a constant one: the same at the kinks)
            return code
        for point, value in act.framework_kinks(self.program.kinks):
            code = f"np.where({name} == {self.scalar(point)}, {self.scalar(value)}, {code})"
        return code

    def tabled(self, body: sp.Expr, name: str) -> str | None:
        """A catalogue activation, or its derivative, with a stable NumPy form in
        :data:`STABLE_FORMS`: the call of that form (exact to rounding over the whole
        float range; the printed formula is what runs on complex arrays)."""
        from symnet.networks.activations import _DISPLAY, Z, describe_derivative, lambdify_numpy

        in_z = body.xreplace({_Z: Z})
        for kind, act in (("f", _DISPLAY.get(in_z)), ("df", describe_derivative(in_z))):
            if act is None or act.name not in STABLE_FORMS or kind not in STABLE_FORMS[act.name]:
                continue
            if any(not v.is_number or not v.is_real for _, v in act.params):
                continue
            params = {k: float(v) for k, v in act.params}
            key = (act.name, kind, tuple(sorted(params.items())))
            label = self.forms.get(key)
            if label is None:
                naive = lambdify_numpy(_Z, body)
                label = self.forms[key] = f"_{kind}_{act.name}" + (f"_{len(self.forms)}" if params else "")
                self.namespace[label] = _stable_helper(STABLE_FORMS[act.name][kind], params, naive)
            return f"{label}({name})"
        return None

    def log_row_sums(self, e: ElementwiseApplyFunction) -> Value | None:
        """``log(e^A 1)`` (the log-sum-exp of softmax cross-entropy) with the max shift."""
        arg = _row_sums_of_exp(e.expr) if _is_function(e.function, "log") else None
        if arg is None:
            return None
        a = self.value(arg)
        if a.layout not in (ROWS, SHARED):
            return None
        self.namespace["_logsumexp_rows"] = _logsumexp_rows
        return Value(f"_logsumexp_rows({a.code}, {self.dim(e.shape[1])})", a.layout, e.shape)

    def softmax_times_sum(self, e: HadamardProduct) -> Value | None:
        """``((T (.) log'(e^A 1)) 1) (.) e^A``, the xent gradient's form of
        ``softmax(A) sum(T)``, computed as a softmax with the max shift (no overflow)."""
        if len(e.args) != 2:
            return None
        for first, second in (e.args, reversed(e.args)):
            if not (isinstance(second, ElementwiseApplyFunction) and _is_function(second.function, "exp")):
                continue
            if not (isinstance(first, sp.MatMul) and len(first.args) == 2
                    and isinstance(first.args[1], sp.OneMatrix) and isinstance(first.args[0], HadamardProduct)):
                continue
            inner = first.args[0].args
            if len(inner) != 2:
                continue
            for t, recip in (inner, reversed(inner)):
                if (isinstance(recip, ElementwiseApplyFunction) and _is_function(recip.function, "reciprocal")
                        and _row_sums_of_exp(recip.expr) == second.expr):
                    a, tv = self.value(second.expr), self.value(t)
                    if a.layout not in (ROWS, SHARED) or tv.layout not in (ROWS, SHARED):
                        return None
                    self.namespace["_softmax_rows"] = _softmax_rows
                    layout = ROWS if ROWS in (a.layout, tv.layout) else SHARED
                    return Value(f"(_softmax_rows({a.code}) * np.sum({tv.code}, axis=1, keepdims=True))",
                                 layout, e.shape)
        return None

    def stable(self, formula: sp.Expr, arg: Any, name: str) -> str | None:
        """Code for the derivative of a catalogue activation that does not overflow:
        ``g(f(z))`` when the catalogue derives f' in terms of the output
        (``sigmoid' = y (1 - y)`` rather than ``exp(-z)/(1 + exp(-z))**2``, which is
        NaN at z = -800), with ``f(z)`` reused when it was computed already.
        None: print the formula as it is.  (The forward formulas stay as printed,
        so the compiled code also runs on complex arrays, for complex-step checks.)
        """
        from symnet.networks.activations import Z, describe_derivative

        act = describe_derivative(formula.xreplace({_Z: Z}))
        if act is None:
            return None
        if any(not v.is_number for _, v in act.params):
            return None
        from symnet.networks.properties import Y, derivative_in_output

        g = derivative_in_output(act)
        if g is None or g.free_symbols - {Y}:
            return None
        body = act.body.xreplace({Z: _Z})
        y = next((n for f, n in self.applied.get(arg, []) if f == body), None)
        if y is None:
            y = self.temp(ScalarPrinter({**self.names, _Z: name}, self.namespace)(body))
        ydummy = sp.Dummy("y")
        code = ScalarPrinter({**self.names, ydummy: y}, self.namespace)(g.xreplace({Y: ydummy}))
        return code if g.has(Y) else f"(np.zeros_like({name}) + {code})"  # a constant: one per entry

    def reuse(self, formula: sp.Expr, arg: Any) -> tuple[sp.Expr, dict]:
        """Write ``formula`` in a value already computed from the same argument, if cheaper
        (``1 - tanh(z)**2`` with ``h = tanh(z)`` becomes ``1 - h**2``)."""
        best, cost, extra = formula, _cost(formula), {}
        for f, name in self.applied.get(arg, []):
            if f == _Z:
                continue
            y = sp.Dummy(name)
            candidate = formula.subs(f, y)
            if _cost(candidate) < cost:
                best, cost, extra = candidate, _cost(candidate), {y: name}
        return best, extra


_Z = sp.Dummy("z")


def _negated(term: Any) -> Any:
    """``b`` for a term ``-1 * b``, else None."""
    if isinstance(term, sp.MatMul) and term.args[0] == -1:
        rest = term.args[1:]
        return rest[0] if len(rest) == 1 else sp.MatMul(*rest, evaluate=False)
    return None


# ---------------------------------------------------------------------------
# Stable NumPy forms
#
# The printed SymPy formula of an activation or its derivative can overflow,
# cancel or divide 0 by 0 where the function itself is tame: 1/(1 + e^-z) at
# z = -800 is fine, but silu' = z e^-z/(1 + e^-z)^2 + ... is inf/inf there;
# log(1 + e^z) is inf at z = 800; sinc'(0) is 0/0; 1 - tanh(z)^2 is 0 (not 4e^-2|z|)
# for |z| > 19.  These forms are exact to rounding over the whole float range
# (exponentials only see -|z|; expm1/log1p where a difference would cancel);
# tests/test_newuser.py checks them against 50-digit mpmath.  They keep the dtype
# (float32 stays float32) and the kink conventions of the printed Piecewise forms
# (the branch ``z < 0`` first, so z = 0 takes the other one).


def _e(z):
    return np.exp(-np.abs(z))


def _times_d_tanh(g, z, out, scratch):
    """``out = g (.) tanh'(z)``, as ``g / cosh(z)^2`` (exact to rounding; ``1 - tanh(z)^2``
    is 0 for |z| > 19)."""
    np.cosh(z, out=scratch)
    np.multiply(scratch, scratch, out=scratch)
    return np.divide(g, scratch, out=out)


def _times_d_sigmoid(g, z, out, scratch):
    """``out = g (.) sigmoid'(z)``, as ``g e / (1 + e)^2`` with ``e = exp(-|z|)`` (``exp(-z)``
    on complex arrays, where ``|z|`` is not analytic)."""
    if np.iscomplexobj(z):
        e = np.exp(-z)
        return np.divide(g * e, (1 + e) ** 2, out=out)
    np.abs(z, out=scratch)
    np.negative(scratch, out=scratch)
    np.exp(scratch, out=scratch)
    np.multiply(g, scratch, out=out)
    np.add(scratch, 1, out=scratch)
    np.multiply(scratch, scratch, out=scratch)
    return np.divide(out, scratch, out=out)


def _sigmoid(z):
    e = _e(z)
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(z):
    return np.logaddexp(0, z)


def _sech2(z):
    e = np.exp(-2 * np.abs(z))
    return 4 * e / (1 + e) ** 2


def _negative(z):
    """z where z < 0, else 0: an exponential of it never overflows."""
    return np.minimum(z, 0)


def _d_sinc(z):
    small = np.abs(z) < 1e-2
    w = np.where(small, 1, z)
    z2 = z * z
    series = z * (-1 / 3 + z2 * (1 / 30 - z2 / 840))
    return np.where(small, series, (w * np.cos(w) - np.sin(w)) / (w * w))


def _erfc(z):
    from symnet.networks.activations import np_erfc

    return np.asarray(np_erfc(z), dtype=np.result_type(z, np.float32))


def _d_mish(z):
    s = _softplus(z)
    return np.tanh(s) + z * _sech2(s) * _sigmoid(z)


_SQRT2 = float(np.sqrt(2.0))
_SQRT2PI = float(np.sqrt(2 * np.pi))

#: activation -> {"f": form, "df": form}; a form takes z and the parameters by name.
STABLE_FORMS: dict[str, dict[str, Any]] = {
    "sigmoid": {"f": lambda z: _sigmoid(z), "df": lambda z: _e(z) / (1 + _e(z)) ** 2},
    "tanh": {"df": lambda z: 1 / np.cosh(z) ** 2},  # inf beyond |z| ~ 710: 0, the value rounded
    "softplus": {"f": lambda z: _softplus(z), "df": lambda z: _sigmoid(z)},
    "silu": {"f": lambda z: z * _sigmoid(z),
             "df": lambda z: _sigmoid(z) * (1 + z * _sigmoid(-z))},
    "mish": {"f": lambda z: z * np.tanh(_softplus(z)), "df": _d_mish},
    "sinc": {"df": _d_sinc},
    "elu": {"f": lambda z, alpha: np.where(z < 0, alpha * np.expm1(_negative(z)), z),
            "df": lambda z, alpha: np.where(z < 0, alpha * np.exp(_negative(z)), np.ones_like(z))},
    "selu": {"f": lambda z, alpha, **k: k["lambda"] * np.where(z < 0, alpha * np.expm1(_negative(z)), z),
             "df": lambda z, alpha, **k: k["lambda"] * np.where(z < 0, alpha * np.exp(_negative(z)),
                                                                  np.ones_like(z))},
    "isru": {"df": lambda z, alpha: (1 + alpha * z * z) ** -1.5},
    "isrlu": {"df": lambda z, alpha: np.where(z < 0, (1 + alpha * _negative(z) ** 2) ** -1.5,
                                              np.ones_like(z))},
    "bent_identity": {"f": lambda z: z + z * (z / (np.hypot(z, 1) + 1)) / 2},
    # written in z, not in the saturating output (cos(y)^2, (1 - |y|)^2 cancel for large |z|)
    "arctan": {"df": lambda z: 1 / (1 + z * z)},
    "softsign": {"df": lambda z: 1 / (1 + np.abs(z)) ** 2},
    "gelu": {"f": lambda z: z * _erfc(-z / _SQRT2) / 2,
             "df": lambda z: _erfc(-z / _SQRT2) / 2 + z * np.exp(-z * z / 2) / _SQRT2PI},
}
for _alias, _name in (("logistic", "sigmoid"), ("swish", "silu"), ("swish1", "silu"), ("atan", "arctan")):
    STABLE_FORMS[_alias] = STABLE_FORMS[_name]

#: activation -> ``helper(g, z, out, scratch)`` writing ``g (.) f'(z)`` into ``out`` (which may
#: be ``g``) through one scratch array: the backward step ``delta_l = (delta_{l+1} W^T) (.) f'(z_l)``
#: with no temporaries.  Same values as :data:`STABLE_FORMS` (exact to rounding), on real and
#: complex arrays alike (the formulas are analytic).
TIMES_DERIVATIVE: dict[str, Any] = {"tanh": _times_d_tanh, "sigmoid": _times_d_sigmoid, "logistic": _times_d_sigmoid}


def _stable_helper(form: Any, params: dict, naive: Any) -> Any:
    """``form`` on real arrays (parameters bound), the printed formula on complex ones."""

    def helper(z):
        if np.iscomplexobj(z):
            return naive(z)
        z = np.asarray(z)
        with np.errstate(all="ignore"):
            return np.asarray(form(z, **params), dtype=z.dtype)

    return helper


def _is_function(lam: Any, which: str) -> bool:
    """``lam`` is symnet's elementwise exp, log or log' (``1/u``)."""
    from symnet.networks import losses

    target = {"exp": losses.EXP, "log": losses.LOG, "reciprocal": losses.RECIPROCAL}[which]
    return isinstance(lam, sp.Lambda) and _body(lam) == _body(target)


def _row_sums_of_exp(e: Any) -> Any:
    """``A`` when ``e`` is ``e^A 1`` (a ones matrix on the right), else None."""
    if (isinstance(e, sp.MatMul) and len(e.args) == 2 and isinstance(e.args[1], sp.OneMatrix)
            and isinstance(e.args[0], ElementwiseApplyFunction) and _is_function(e.args[0].function, "exp")):
        return e.args[0].expr
    return None


def _row_max(a: np.ndarray) -> np.ndarray:
    m = np.max(np.real(a), axis=1, keepdims=True)
    return np.where(np.isfinite(m), m, 0)


def _logsumexp_rows(a: np.ndarray, cols: int) -> np.ndarray:
    """``log(e^a 1)``: each row's log-sum-exp, shifted by its max, repeated ``cols`` times."""
    m = _row_max(a)
    s = m + np.log(np.sum(np.exp(a - m), axis=1, keepdims=True))
    return s if cols == 1 else np.repeat(s, cols, axis=1)


def _softmax_rows(a: np.ndarray) -> np.ndarray:
    """Each row's softmax, shifted by its max (no overflow)."""
    e = np.exp(a - _row_max(a))
    return e / np.sum(e, axis=1, keepdims=True)


def _body(lam: sp.Lambda) -> sp.Expr:
    (var,) = lam.variables
    return lam.expr.xreplace({var: _Z})


def _cost(e: sp.Expr) -> int:
    """Transcendental calls first, then operations: what an elementwise pass costs."""
    calls = sum(1 for a in sp.preorder_traversal(e) if isinstance(a, sp.Function))
    return 100 * calls + sp.count_ops(e)


def _normal(layout: str, shape: tuple) -> str:
    """A 1x1 per-example value is stored N x 1 whichever way it was reached: call it rows."""
    if layout == COLS and _is_one(shape[0]):
        return ROWS
    return layout


def _rowsum(a: np.ndarray, cols: int) -> np.ndarray:
    """``a 1`` for an N x k batch of rows and a k x cols ones matrix."""
    s = np.sum(a, axis=1, keepdims=True)
    return s if cols == 1 else np.broadcast_to(s, (a.shape[0], cols))


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _free_dead(lines: list[str], keep: set[str]) -> list[str]:
    """``del`` each intermediate after its last use, so large arrays are freed early."""
    targets = [line.split(" = ", 1)[0] for line in lines]
    assigned = set(targets)
    last: dict[str, int] = {t: i for i, t in enumerate(targets)}  # assigned, maybe never read
    for i, line in enumerate(lines):
        for name in _IDENTIFIER.findall(line.split(" = ", 1)[1]):
            if name in assigned:
                last[name] = i
    dying: dict[int, list[str]] = {}
    for name, i in last.items():
        if name not in keep:
            dying.setdefault(i, []).append(name)
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in dying:
            out.append("del " + ", ".join(sorted(dying[i])))
    return out


_PLACEHOLDER = re.compile(r"\b_buf\d+_*\b")


def _assign_slots(lines: list[str], buffers: dict, arrays: list, identifier: Any) -> list[str]:
    """Each buffer placeholder replaced by a slot of the workspace, ``_slots[k]``.

    A slot is reused for a later buffer of the same shape once every name for the array it
    holds is dead (``a = b`` makes ``a`` a name for ``b``'s array), so the workspace is as
    large as the arrays alive at once.  A line fetching the slots (``_workspace(dtype,
    shapes)``, the dtype that of all the arrays given) goes before the first use.
    """
    if not buffers:
        return lines
    splits = [line.split(" = ", 1) for line in lines]
    last: dict[str, int] = {}
    for i, (target, rhs) in enumerate(splits):
        last.setdefault(target, i)
        for name in _IDENTIFIER.findall(rhs):
            last[name] = i
    root: dict[str, str] = {}  # a name -> the placeholder whose array it names
    for target, rhs in splits:
        bare = rhs.strip("() ").removesuffix(".T")
        if bare.isidentifier():
            root.setdefault(target, root.get(bare, bare))
    span: dict[str, list[int]] = {}  # placeholder -> [first line, last line] of its array
    for i, line in enumerate(lines):
        for name in _PLACEHOLDER.findall(line):
            span.setdefault(name, [i, i])[1] = i
    for name, i in last.items():
        if root.get(name) in span:
            span[root[name]][1] = max(span[root[name]][1], i)
    shapes: list[str] = []
    slot: dict[str, int] = {}
    free: dict[str, list[int]] = {}
    alive: list[str] = []
    for start, placeholder in sorted((s[0], p) for p, s in span.items()):
        for other in [o for o in alive if span[o][1] < start]:
            alive.remove(other)
            free.setdefault(buffers[other][0], []).append(slot[other])
        shape = buffers[placeholder][0]
        if free.get(shape):
            slot[placeholder] = free[shape].pop()
        else:
            slot[placeholder] = len(shapes)
            shapes.append(shape)
        alive.append(placeholder)
    first = min(s[0] for s in span.values())
    dtype = "np.result_type(" + ", ".join(identifier(a) for a in arrays) + ")"
    fetch = f"_slots = _workspace({dtype}, ({', '.join(shapes)},))"
    out = [_PLACEHOLDER.sub(lambda m: f"_slots[{slot[m.group(0)]}]", line) for line in lines]
    return [*out[:first], fetch, *out[first:]]


class Workspace:
    """The arrays a compiled function writes its intermediates into, kept between calls.

    One set per thread, for the most recent dtype and shapes (a new batch size replaces
    them); :meth:`release` frees them.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, dtype: Any, shapes: tuple) -> list[np.ndarray]:
        key = (np.dtype(dtype), shapes)
        held = getattr(self._local, "held", None)
        if held is None or held[0] != key:
            held = self._local.held = (key, [np.empty(shape, dtype) for shape in shapes])
        return held[1]

    def release(self) -> None:
        """Drop this thread's arrays (the next call allocates them again)."""
        self._local.held = None


def _exec_generated(source: str, namespace: dict) -> Any:
    """Compile source *generated by this module from SymPy trees* (never user text).

    The only ``exec`` in symnet's numeric path: identifiers in ``source`` are
    checked names of our own symbols, numbers are printed by ``repr(float)``.
    """
    code = compile(source, "<symnet generated>", "exec")
    exec(code, namespace)  # generated code only; see the docstring
    return namespace["symnet_gradients"]


# ---------------------------------------------------------------------------
# The callable


class CompiledFunction:
    """``f(x=..., t=..., W1=..., b1=..., ..., a1=...)``: the loss and gradients summed over the batch.

    Returns ``{"loss": float, "W1": array, "b1": array, ...}`` (only ``loss`` for a
    loss function).  Arrays keep a floating dtype given to them (float32 stays
    float32); integers become float64.  ``source`` is the generated code.
    """

    def __init__(self, program: Program, raw: Any, source: str, gradients: bool):
        self.program = program
        self.raw = raw
        self.source = source
        self.gradients = gradients
        self.batched = [s.name for s in program.batched]
        self.parameters = [s.name for s in program.parameters]
        self.scalars = [s.name for s in program.scalars]
        self.shapes = {s.name: s.shape for s in [*program.batched, *program.parameters]}
        self.workspace = Workspace()  # the intermediates' arrays, reused by every call

    @property
    def arguments(self) -> list[str]:
        return [*self.batched, *self.parameters, *self.scalars]

    def __call__(self, **arrays: Any) -> dict[str, Any]:
        names = self.arguments
        missing = [n for n in names if n not in arrays]
        unknown = [n for n in arrays if n not in names]
        if missing or unknown:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if unknown:
                parts.append("unknown " + ", ".join(unknown))
            raise SymnetError(f"gradient function arguments: {'; '.join(parts)} (expects {', '.join(names)})")
        args = []
        batch = None
        for n in self.batched + self.parameters:
            a = _as_array(arrays[n], n)
            rows, cols = self.shapes[n]
            if n in self.batched:
                batch = a.shape[0] if batch is None else batch
                if a.shape[0] != batch:
                    raise ShapeError(f"{n} has {a.shape[0]} rows but {self.batched[0]} has {batch}")
                expected = (a.shape[0], cols)
            else:
                expected = (rows, cols)
            for have, want, axis in zip(a.shape, expected, ("rows", "columns")):
                if _sympify(want).is_Integer and have != int(want):
                    raise ShapeError(f"{n} has {have} {axis}, expected {int(want)}")
            args.append(a)
        for n in self.scalars:
            v = arrays[n]
            if not np.isscalar(v) and np.ndim(v) != 0:
                raise ShapeError(f"the scalar parameter {n} must be a number")
            args.append(float(v))
        out = self.raw(*args, self.workspace)
        out["loss"] = float(np.asarray(out["loss"]).reshape(-1)[0])
        return out


def _as_array(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        if not np.issubdtype(a.dtype, np.number):
            raise ShapeError(f"{name} must be numeric")
        a = a.astype(np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ShapeError(f"{name} must be a matrix, got {a.ndim} dimensions")
    return a


__all__ = ["KINK_CONVENTIONS", "STABLE_FORMS", "CodegenError", "CompiledFunction", "Program", "ScalarPrinter", "program_for"]
