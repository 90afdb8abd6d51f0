"""The activation catalogue: one record per function, and the spec parser.

Each record keeps together what the rest of symnet needs of an activation:
its SymPy formula in ``z``, a NumPy implementation, its parameters and how it
is displayed.  Properties (derivative, range, continuity, ...) are *derived*
from the formula by :mod:`symnet.properties`, never typed in.

A spec names a record and optionally binds parameters::

    "tanh"   "affine"   "affine(a=2, c=-1)"   "leaky_relu(alpha=0.01)"

Specs are parsed with a small grammar of our own; no text reaches ``eval``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np
import sympy as sp

from .errors import SpecError

#: The scalar variable every formula is written in.
Z = sp.Symbol("z", real=True)


@dataclass(frozen=True)
class Parameter:
    """A scalar parameter of an activation.

    ``default`` is a SymPy number, or ``None`` for a parameter that becomes a
    per-layer real symbol when left unbound (``a1, c1, a2, ...`` for affine).
    """

    name: str
    default: sp.Expr | None
    positive: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Activation:
    """One catalogue record.

    ``formula(z, **params)`` builds the SymPy expression; ``numpy(z, **params)``
    evaluates it on arrays with float parameters.  ``latex``/``text`` are the
    display names used by the printers.
    """

    name: str
    formula: Callable[..., sp.Expr]
    numpy: Callable[..., np.ndarray]
    latex: str
    text: str = ""
    parameters: tuple[Parameter, ...] = ()
    aliases: tuple[str, ...] = ()
    subgradient: str = ""
    doc: str = ""

    def bind(self, layer: int | None = None, **values: sp.Expr) -> BoundActivation:
        """This activation with every parameter fixed (to a number or a symbol)."""
        known = {p.name for p in self.parameters}
        for key in values:
            if key not in known:
                expected = ", ".join(sorted(known)) or "none"
                raise SpecError(
                    f"activation {self.name!r} has no parameter {key!r} (parameters: {expected})"
                )
        bound = []
        for p in self.parameters:
            if p.name in values:
                value = values[p.name]
            elif p.default is not None:
                value = p.default
            else:
                suffix = "" if layer is None else str(layer)
                value = sp.Symbol(f"{p.name}{suffix}", real=True)
            if p.positive and value.is_number and not value > 0:
                raise SpecError(f"parameter {p.name} of {self.name} must be positive, got {value}")
            bound.append((p.name, sp.sympify(value)))
        return BoundActivation(self, tuple(bound))


@dataclass(frozen=True)
class BoundActivation:
    """An activation with its parameters fixed: what one layer applies."""

    record: Activation
    params: tuple[tuple[str, sp.Expr], ...] = ()
    _cache: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def body(self) -> sp.Expr:
        """The formula as a SymPy expression in :data:`Z`."""
        if "body" not in self._cache:
            body = sp.sympify(self.record.formula(Z, **dict(self.params)))
            self._cache["body"] = body
            _DISPLAY.setdefault(body, self)
        return self._cache["body"]

    @property
    def lam(self) -> sp.Lambda:
        return sp.Lambda(Z, self.body)

    def numpy(self, z: np.ndarray) -> np.ndarray:
        """Evaluate elementwise on an array (parameters must be numbers)."""
        values = {}
        for key, value in self.params:
            if not value.is_number:
                raise SpecError(f"parameter {key}={value} of {self.name} has no numeric value")
            values[key] = float(value)
        return self.record.numpy(np.asarray(z, dtype=float), **values)

    @property
    def is_affine(self) -> bool:
        """True iff the formula is ``a z + c`` for scalars a, c free of z."""
        return self.affine_coefficients is not None

    @property
    def affine_coefficients(self) -> tuple[sp.Expr, sp.Expr] | None:
        """``(a, c)`` with ``f(z) = a z + c``, or None when f is not affine."""
        if "affine" not in self._cache:
            self._cache["affine"] = _affine_coefficients(self.body)
        return self._cache["affine"]

    @property
    def spec(self) -> str:
        """A spec string that parses back to this activation."""
        defaults = {p.name: p.default for p in self.record.parameters}
        shown = [f"{k}={v}" for k, v in self.params if defaults.get(k) is None or v != defaults[k]]
        return self.name + (f"({', '.join(shown)})" if shown else "")

    def _param_suffix(self, latex: bool) -> str:
        numeric = [(k, v) for k, v in self.params if v.is_number]
        defaults = {p.name: p.default for p in self.record.parameters}
        shown = [(k, v) for k, v in numeric if v != defaults.get(k)]
        if not shown:
            return ""
        if latex:
            return "_{" + ",".join(sp.latex(v) for _, v in shown) + "}"
        return "[" + ", ".join(f"{k}={v}" for k, v in shown) + "]"

    @property
    def latex_name(self) -> str:
        return self.record.latex + self._param_suffix(True)

    @property
    def text_name(self) -> str:
        return (self.record.text or self.record.name) + self._param_suffix(False)


def _affine_coefficients(body: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    if body.has(sp.Piecewise, sp.Max, sp.Min, sp.Heaviside, sp.Abs):
        return None
    try:
        poly = sp.Poly(sp.expand(body), Z)
    except sp.PolynomialError:
        return None
    if poly.degree() > 1 or any(c.has(Z) for c in poly.all_coeffs()):
        return None
    return sp.expand(body.diff(Z)), sp.expand(body.subs(Z, 0))


# Display registry: printers look up a formula to show its activation's name.
_DISPLAY: dict[sp.Expr, BoundActivation] = {}


def describe(body: sp.Expr) -> BoundActivation | None:
    """The catalogue activation whose formula is ``body``, if one was used."""
    return _DISPLAY.get(body)


# --------------------------------------------------------------------------
# The records.  Keep each activation's pieces together: adding one touches
# only this list.


def _sigmoid_np(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


_RECORDS: list[Activation] = [
    Activation(
        "identity",
        lambda z: z,
        lambda z: z,
        latex=r"\operatorname{id}",
        aliases=("linear",),
        doc="f(z) = z",
    ),
    Activation(
        "affine",
        lambda z, a, c: a * z + c,
        lambda z, a, c: a * z + c,
        latex=r"\operatorname{aff}",
        parameters=(Parameter("a", None), Parameter("c", None)),
        doc="f(z) = a z + c, elementwise; a, c scalars",
    ),
    Activation(
        "tanh",
        lambda z: sp.tanh(z),
        np.tanh,
        latex=r"\tanh",
        doc="hyperbolic tangent",
    ),
    Activation(
        "sigmoid",
        lambda z: 1 / (1 + sp.exp(-z)),
        _sigmoid_np,
        latex=r"\sigma",
        aliases=("logistic",),
        doc="logistic sigmoid 1/(1+e^-z)",
    ),
    Activation(
        "relu",
        lambda z: sp.Max(0, z),
        lambda z: np.maximum(z, 0.0),
        latex=r"\operatorname{relu}",
        subgradient="relu'(0) = 0",
        doc="rectified linear unit max(0, z)",
    ),
    Activation(
        "leaky_relu",
        lambda z, alpha: sp.Piecewise((alpha * z, z < 0), (z, True)),
        lambda z, alpha: np.where(z < 0, alpha * z, z),
        latex=r"\operatorname{lrelu}",
        parameters=(Parameter("alpha", sp.Rational(1, 100)),),
        subgradient="leaky_relu'(0) = 1",
        doc="alpha z for z < 0, z otherwise",
    ),
    Activation(
        "step",
        lambda z: sp.Heaviside(z, 1),
        lambda z: np.heaviside(z, 1.0),
        latex=r"\operatorname{step}",
        aliases=("heaviside",),
        subgradient="step'(0) = 0 (a Dirac delta in the distributional sense)",
        doc="0 for z < 0, 1 for z >= 0",
    ),
    Activation(
        "softplus",
        lambda z: sp.log(1 + sp.exp(z)),
        lambda z: np.logaddexp(0.0, z),
        latex=r"\operatorname{softplus}",
        doc="ln(1 + e^z)",
    ),
]

CATALOGUE: dict[str, Activation] = {}
for _record in _RECORDS:
    CATALOGUE[_record.name] = _record
    for _alias in _record.aliases:
        CATALOGUE[_alias] = _record


def names() -> list[str]:
    """Primary names of all catalogue records, in catalogue order."""
    return [r.name for r in _RECORDS]


def lookup(name: str) -> Activation:
    """The record called ``name`` (or an alias); a SpecError lists the known names."""
    try:
        return CATALOGUE[name.strip().lower()]
    except KeyError:
        raise SpecError(
            f"unknown activation {name!r}; known: {', '.join(names())}"
        ) from None


# --------------------------------------------------------------------------
# Spec parsing: NAME or NAME(arg, key=value, ...), values numbers or names.

_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?(/\d+)?$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SPEC_LENGTH = 200


def parse_value(text: str, where: str) -> sp.Expr:
    """A parameter value: an exact number (``2``, ``-0.01``, ``1/2``, ``1e-3``) or a name."""
    text = text.strip()
    if _NUMBER.match(text):
        number, _, den = text.partition("/")
        value = Fraction(number)
        if den:
            if int(den) == 0:
                raise SpecError(f"{where}: division by zero in {text!r}")
            value /= int(den)
        return sp.Rational(value.numerator, value.denominator)
    if _NAME.match(text):
        return sp.Symbol(text, real=True)
    raise SpecError(f"{where}: {text!r} is not a number or a name")


def parse_spec(spec: str, layer: int | None = None) -> BoundActivation:
    """Parse an activation spec such as ``"affine(a=2, c=-1)"`` into a bound activation."""
    if not isinstance(spec, str):
        raise SpecError(f"activation spec must be a string, got {type(spec).__name__}")
    if len(spec) > MAX_SPEC_LENGTH:
        raise SpecError(f"activation spec longer than {MAX_SPEC_LENGTH} characters")
    where = f"activation spec {spec!r}"
    match = _SPEC.match(spec)
    if not match:
        raise SpecError(f"{where}: expected NAME or NAME(key=value, ...)")
    record = lookup(match.group(1))
    values: dict[str, sp.Expr] = {}
    inner = match.group(2)
    if inner is not None and inner.strip():
        order = [p.name for p in record.parameters]
        for position, piece in enumerate(inner.split(",")):
            key, eq, value = piece.partition("=")
            if not eq:
                if position >= len(order):
                    raise SpecError(f"{where}: too many positional parameters")
                key, value = order[position], piece
            key = key.strip()
            if not _NAME.match(key):
                raise SpecError(f"{where}: bad parameter name {key!r}")
            if key in values:
                raise SpecError(f"{where}: parameter {key!r} given twice")
            values[key] = parse_value(value, where)
    return record.bind(layer, **values)
