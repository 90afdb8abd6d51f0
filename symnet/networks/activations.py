"""The activation catalogue: one record per function, and the spec parser.

Each record keeps together what the rest of symnet needs of an activation:
its SymPy formula in ``z``, a NumPy implementation, its parameters and how it
is displayed.  Properties (derivative, range, continuity, ...) are *derived*
from the formula by :mod:`symnet.networks.properties`, never typed in.

A spec names a record and optionally binds parameters::

    "tanh"   "affine"   "affine(a=2, c=-1)"   "leaky_relu(alpha=0.01)"

Specs are parsed with a small grammar of our own; no text reaches ``eval``.
"""

from __future__ import annotations

import functools
import math
import re
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy as sp
from sympy.core.sympify import _sympify

from symnet.errors import SpecError
from symnet.kernel.bridge import formula
from symnet.kernel.terms import Fn, Term, num

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


#: The frameworks whose derivative conventions at kinks symnet records (and
#: ``gradients(..., kinks=...)`` can follow in compiled code), besides its own.
FRAMEWORKS = ("torch", "jax")


@dataclass(frozen=True)
class FrameworkKink:
    """f' at one point where f is not differentiable, as PyTorch and JAX compute it.

    ``point``, ``torch`` and ``jax`` take the bound parameters as a dict (``{"alpha": ...}``)
    and return SymPy numbers (or expressions in symbolic parameters).  symnet's own value
    is not typed in here: :func:`symnet.networks.properties.nondifferentiable` derives it.
    ``torch_source`` / ``jax_source`` name the function and the rule its autograd applies
    (checked against PyTorch 2.13 and JAX 0.10; tests/test_kinks.py).
    """

    point: Callable[[dict], sp.Expr]
    torch: Callable[[dict], sp.Expr]
    jax: Callable[[dict], sp.Expr]
    torch_source: str = ""
    jax_source: str = ""


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
    reference: str = ""
    kinks: tuple[FrameworkKink, ...] = ()  # what PyTorch and JAX take f' to be at each kink

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
            try:
                value = _sympify(value)  # strict: a string is refused, never parsed
            except sp.SympifyError:
                raise SpecError(
                    f"parameter {p.name} of {self.name} must be a number or a SymPy expression, got {value!r}"
                ) from None
            bound.append((p.name, value))
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
            body = _sympify(self.record.formula(Z, **dict(self.params)))
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

    def framework_kinks(self, framework: str) -> list[tuple[sp.Expr, sp.Expr]]:
        """``[(point, f'(point)), ...]`` as ``framework`` ("torch" or "jax") computes f' at
        the record's kinks; empty for a record without kinks."""
        if framework not in FRAMEWORKS:
            raise SpecError(f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}")
        params = dict(self.params)
        return [
            (_sympify(k.point(params)), _sympify(getattr(k, framework)(params)))
            for k in self.record.kinks
        ]

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


_DERIVATIVES: dict[sp.Expr, BoundActivation] = {}  # f' (in Z) -> f, for formulas in use
_DIFFERENTIATED: list = []  # the registrations already differentiated, in order


def describe_derivative(body: sp.Expr) -> BoundActivation | None:
    """The catalogue activation ``f`` (one already used) whose derivative, as the
    kernel takes it, is ``body``; None for constant derivatives and unknown bodies."""
    from symnet.kernel import elementwise_derivative  # the kernel's f', so proofs and code agree

    registered = list(_DISPLAY.items())
    for f, act in registered[len(_DIFFERENTIATED):]:
        _DIFFERENTIATED.append(f)
        d = elementwise_derivative(sp.Lambda(Z, f)).expr
        if d.has(Z):
            _DERIVATIVES.setdefault(d, act)
    return _DERIVATIVES.get(body)


# --------------------------------------------------------------------------
# NumPy helpers.  Every NumPy form is written to stay finite and silent (no
# overflow or invalid-value warnings) for |z| up to 1e3 and beyond: exponentials
# only ever see non-positive arguments, and erf is taken from the C library.

_erf_ufunc = np.frompyfunc(math.erf, 1, 1)
_erfc_ufunc = np.frompyfunc(math.erfc, 1, 1)


def np_erf(x: np.ndarray) -> np.ndarray:
    """The error function elementwise (NumPy has none; this uses ``math.erf``)."""
    return np.asarray(_erf_ufunc(np.asarray(x, dtype=float)), dtype=float)


def np_erfc(x: np.ndarray) -> np.ndarray:
    """The complementary error function elementwise (``math.erfc``)."""
    return np.asarray(_erfc_ufunc(np.asarray(x, dtype=float)), dtype=float)


def np_sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, stable for any finite z (exp sees only -|z|)."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _elu_np(z: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(z < 0, alpha * np.expm1(np.minimum(z, 0.0)), z)


def _isru_np(z: np.ndarray, alpha: float) -> np.ndarray:
    return z / np.sqrt(1.0 + alpha * z * z)


def _softplus_np(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


#: Functions ``sympy.lambdify`` needs beyond NumPy's own to evaluate catalogue
#: formulas on arrays (:func:`lambdify_numpy` puts them before NumPy's names).
LAMBDIFY_NUMPY: dict[str, Callable[..., np.ndarray]] = {
    "erf": np_erf,
    "erfc": np_erfc,
    # the derivative of step: 0 away from 0, undefined (NaN: no evidence) at 0
    "DiracDelta": lambda x, *k: np.where(np.asarray(x) == 0, np.nan, 0.0),
}


def lambdify_numpy(args, expr: sp.Expr, **options) -> Callable[..., np.ndarray]:
    """``sympy.lambdify(args, expr, modules=[LAMBDIFY_NUMPY, "numpy"])``: the same printer,
    the same code and the same names for it, without the import that lambdify's "numpy"
    module costs on first use (``from numpy import *`` loads f2py, testing and ten other
    NumPy submodules: 0.09 s in every process that lambdifies)."""
    return sp.lambdify(args, expr, modules=[LAMBDIFY_NUMPY, _numpy_namespace()], **options)


@functools.cache
def _numpy_namespace():
    """A module named numpy (lambdify picks its printer by the name) holding what
    lambdify's own "numpy" namespace holds: NumPy's public names, then NumPy's linalg
    names over them, ``numpy``, ``I``, ``Heaviside`` and ``Abs``. The public names NumPy
    loads only on first use are its submodules (f2py, testing, ...): generated code never
    names those, so they are left out."""
    m = types.ModuleType("numpy")
    loaded = vars(np)
    m.__dict__.update({k: loaded[k] for k in np.__all__ if k in loaded})
    m.__dict__.update({k: getattr(np.linalg, k) for k in np.linalg.__all__})
    m.__dict__.update({"numpy": np, "I": 1j, "Heaviside": np.heaviside, "Abs": abs})
    return m


# SELU's constants (Klambauer et al. 2017), to 32 significant digits, as the exact
# rationals those digits spell: a Float would absorb nearby rationals in
# arithmetic (Float - Rational is computed at the Float's precision).
SELU_LAMBDA = sp.Rational("1.0507009873554804934193349852946")
SELU_ALPHA = sp.Rational("1.6732632423543772848170429916717")


def _selu(z: sp.Expr, alpha: sp.Expr, **rest: sp.Expr) -> sp.Expr:
    return rest["lambda"] * sp.Piecewise((alpha * (sp.exp(z) - 1), z < 0), (z, True))


def _selu_np(z: np.ndarray, alpha: float, **rest: float) -> np.ndarray:
    return rest["lambda"] * _elu_np(z, alpha)


def _hard_sigmoid(z: sp.Expr, slope: sp.Expr, shift: sp.Expr) -> sp.Expr:
    return sp.Piecewise(
        (0, z <= -shift / slope), (1, z >= (1 - shift) / slope), (slope * z + shift, True)
    )


# --------------------------------------------------------------------------
# The records.  Keep each activation's pieces together: adding one touches
# only this list.  Subgradient convention at a breakpoint of a Piecewise
# formula: the derivative of the piece whose condition holds there (so write
# ``z <= 0`` or ``z < 0`` on purpose); ``symnet.networks.properties`` derives it.

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
        parameters=(Parameter("a", None, doc="slope"), Parameter("c", None, doc="offset")),
        doc="f(z) = a z + c, elementwise; a, c scalars",
    ),
    Activation(
        "step",
        lambda z: sp.Heaviside(z, 1),
        lambda z: np.heaviside(z, 1.0),
        latex=r"\operatorname{step}",
        aliases=("heaviside", "binary_step"),
        subgradient="step'(0) = 0 (a Dirac delta in the distributional sense)",
        kinks=(
            FrameworkKink(
                lambda p: 0,
                lambda p: 0,
                lambda p: 0,
                torch_source="torch.heaviside has no derivative (backward raises); "
                "(z >= 0).to(z.dtype) passes no gradient: 0",
                jax_source="jnp.heaviside is built from jnp.where on constants: 0",
            ),
        ),
        doc="0 for z < 0, 1 for z >= 0 (Heaviside(z, 1), not SymPy's default H(0) = 1/2)",
    ),
    Activation(
        "sigmoid",
        lambda z: 1 / (1 + sp.exp(-z)),
        np_sigmoid,
        latex=r"\sigma",
        aliases=("logistic",),
        doc="logistic sigmoid 1/(1+e^-z)",
    ),
    Activation(
        "tanh",
        lambda z: sp.tanh(z),
        np.tanh,
        latex=r"\tanh",
        doc="hyperbolic tangent",
    ),
    Activation(
        "arctan",
        lambda z: sp.atan(z),
        np.arctan,
        latex=r"\arctan",
        aliases=("atan",),
        doc="inverse tangent",
    ),
    Activation(
        "softsign",
        lambda z: z / (1 + sp.Abs(z)),
        lambda z: z / (1.0 + np.abs(z)),
        latex=r"\operatorname{softsign}",
        doc="z/(1 + |z|)",
        reference="Bergstra et al. 2009; Glorot & Bengio 2010",
    ),
    Activation(
        "isru",
        lambda z, alpha: z / sp.sqrt(1 + alpha * z**2),
        _isru_np,
        latex=r"\operatorname{isru}",
        parameters=(Parameter("alpha", sp.Integer(1), positive=True),),
        doc="inverse square root unit z/sqrt(1 + alpha z^2)",
        reference="Carlile et al. 2017",
    ),
    Activation(
        "relu",
        lambda z: sp.Max(0, z),
        lambda z: np.maximum(z, 0.0),
        latex=r"\operatorname{relu}",
        subgradient="relu'(0) = 0",
        kinks=(
            FrameworkKink(
                lambda p: 0,
                lambda p: 0,
                lambda p: 0,
                torch_source="F.relu: threshold_backward, 0 where z <= 0",
                jax_source="jax.nn.relu: custom JVP select(z > 0, g, 0)",
            ),
        ),
        doc="rectified linear unit max(0, z)",
        reference="Nair & Hinton 2010",
    ),
    Activation(
        "leaky_relu",
        lambda z, alpha: sp.Piecewise((alpha * z, z < 0), (z, True)),
        lambda z, alpha: np.where(z < 0, alpha * z, z),
        latex=r"\operatorname{lrelu}",
        parameters=(Parameter("alpha", sp.Rational(1, 100)),),
        subgradient="leaky_relu'(0) = 1",
        kinks=(
            FrameworkKink(
                lambda p: 0,
                lambda p: p["alpha"],
                lambda p: 1,
                torch_source="F.leaky_relu: leaky_relu_backward, z > 0 ? g : negative_slope g",
                jax_source="jax.nn.leaky_relu: where(z >= 0, z, negative_slope z)",
            ),
        ),
        doc="alpha z for z < 0, z otherwise",
        reference="Maas et al. 2013",
    ),
    Activation(
        "prelu",
        lambda z, alpha: sp.Piecewise((alpha * z, z < 0), (z, True)),
        lambda z, alpha: np.where(z < 0, alpha * z, z),
        latex=r"\operatorname{prelu}",
        parameters=(Parameter("alpha", sp.Rational(1, 4), doc="learned slope; 1/4 at init"),),
        subgradient="prelu'(0) = 1",
        kinks=(
            FrameworkKink(
                lambda p: 0,
                lambda p: p["alpha"],
                lambda p: 1,
                torch_source="F.prelu: z > 0 ? g : weight g",
                jax_source="no jax.nn.prelu; Flax's nn.PReLU: where(z >= 0, z, negative_slope z)",
            ),
        ),
        doc="parametric ReLU: alpha z for z < 0, z otherwise",
        reference="He et al. 2015",
    ),
    Activation(
        "elu",
        lambda z, alpha: sp.Piecewise((alpha * (sp.exp(z) - 1), z < 0), (z, True)),
        _elu_np,
        latex=r"\operatorname{elu}",
        parameters=(Parameter("alpha", sp.Integer(1)),),
        subgradient="elu'(0) = 1",
        kinks=(
            FrameworkKink(
                lambda p: 0,
                lambda p: p["alpha"],
                lambda p: p["alpha"],
                torch_source="F.elu: elu_backward, z <= 0 ? g alpha e^z : g",
                jax_source="jax.nn.elu: where(z > 0, z, alpha expm1(z))",
            ),
        ),
        doc="exponential linear unit: alpha (e^z - 1) for z < 0, z otherwise",
        reference="Clevert et al. 2015",
    ),
    Activation(
        "selu",
        _selu,
        _selu_np,
        latex=r"\operatorname{selu}",
        parameters=(
            Parameter("lambda", SELU_LAMBDA, positive=True, doc="scale"),
            Parameter("alpha", SELU_ALPHA),
        ),
        subgradient="selu'(0) = lambda",
        kinks=(
            FrameworkKink(
                lambda p: 0,
                lambda p: p["lambda"] * p["alpha"],
                lambda p: p["lambda"] * p["alpha"],
                torch_source="F.selu: elu_backward with scale lambda, z <= 0 ? g lambda alpha e^z : g lambda",
                jax_source="jax.nn.selu: lambda elu(z, alpha), where(z > 0, ...)",
            ),
        ),
        doc="scaled ELU: lambda (alpha (e^z - 1)) for z < 0, lambda z otherwise",
        reference="Klambauer et al. 2017",
    ),
    Activation(
        "isrlu",
        lambda z, alpha: sp.Piecewise((z / sp.sqrt(1 + alpha * z**2), z < 0), (z, True)),
        lambda z, alpha: np.where(z < 0, _isru_np(np.minimum(z, 0.0), alpha), z),
        latex=r"\operatorname{isrlu}",
        parameters=(Parameter("alpha", sp.Integer(1), positive=True),),
        doc="inverse square root linear unit: isru for z < 0, z otherwise",
        reference="Carlile et al. 2017",
    ),
    Activation(
        "softplus",
        lambda z: sp.log(1 + sp.exp(z)),
        _softplus_np,
        latex=r"\operatorname{softplus}",
        doc="ln(1 + e^z)",
        reference="Dugas et al. 2001",
    ),
    Activation(
        "bent_identity",
        lambda z: (sp.sqrt(z**2 + 1) - 1) / 2 + z,
        lambda z: (np.hypot(z, 1.0) - 1.0) / 2.0 + z,
        latex=r"\operatorname{bent}",
        doc="(sqrt(z^2 + 1) - 1)/2 + z",
    ),
    Activation(
        "silu",
        lambda z: z / (1 + sp.exp(-z)),
        lambda z: z * np_sigmoid(z),
        latex=r"\operatorname{silu}",
        aliases=("swish", "swish1"),
        doc="sigmoid linear unit z sigmoid(z) (swish with beta = 1)",
        reference="Elfwing et al. 2017; Ramachandran et al. 2017",
    ),
    Activation(
        "gelu",
        lambda z: z * (1 + sp.erf(z / sp.sqrt(2))) / 2,
        lambda z: 0.5 * z * np_erfc(-z / math.sqrt(2.0)),
        latex=r"\operatorname{gelu}",
        doc="Gaussian error linear unit z Phi(z), Phi(z) = (1 + erf(z/sqrt 2))/2",
        reference="Hendrycks & Gimpel 2016",
    ),
    Activation(
        "mish",
        lambda z: z * sp.tanh(sp.log(1 + sp.exp(z))),
        lambda z: z * np.tanh(_softplus_np(z)),
        latex=r"\operatorname{mish}",
        doc="z tanh(softplus(z))",
        reference="Misra 2019",
    ),
    Activation(
        "sin",
        lambda z: sp.sin(z),
        np.sin,
        latex=r"\sin",
        aliases=("sine",),
        doc="sine",
    ),
    Activation(
        "sinc",
        lambda z: sp.sinc(z),
        lambda z: np.sinc(z / np.pi),
        latex=r"\operatorname{sinc}",
        doc="unnormalised sinc: sin(z)/z, and 1 at z = 0",
    ),
    Activation(
        "gaussian",
        lambda z: sp.exp(-(z**2)),
        lambda z: np.exp(-(z * z)),
        latex=r"\operatorname{gauss}",
        doc="e^(-z^2)",
    ),
    Activation(
        "hard_tanh",
        lambda z: sp.Piecewise((-1, z <= -1), (1, z >= 1), (z, True)),
        lambda z: np.clip(z, -1.0, 1.0),
        latex=r"\operatorname{hardtanh}",
        aliases=("hardtanh",),
        subgradient="hard_tanh'(-1) = hard_tanh'(1) = 0",
        kinks=(
            FrameworkKink(
                lambda p: -1,
                lambda p: 0,
                lambda p: 1,
                torch_source="F.hardtanh: hardtanh_backward, 0 where z <= -1 or z >= 1",
                jax_source="jax.nn.hard_tanh: where(z > 1, 1, where(z < -1, -1, z))",
            ),
            FrameworkKink(
                lambda p: 1,
                lambda p: 0,
                lambda p: 1,
                torch_source="F.hardtanh: hardtanh_backward, 0 where z <= -1 or z >= 1",
                jax_source="jax.nn.hard_tanh: where(z > 1, 1, where(z < -1, -1, z))",
            ),
        ),
        doc="clip(z, -1, 1)",
        reference="Collobert 2004",
    ),
    Activation(
        "hard_sigmoid",
        _hard_sigmoid,
        lambda z, slope, shift: np.clip(slope * z + shift, 0.0, 1.0),
        latex=r"\operatorname{hardsigmoid}",
        aliases=("hardsigmoid",),
        parameters=(
            Parameter("slope", sp.Rational(1, 6), positive=True),
            Parameter("shift", sp.Rational(1, 2)),
        ),
        subgradient="zero at both corners (PyTorch's convention)",
        kinks=(
            FrameworkKink(
                lambda p: -p["shift"] / p["slope"],
                lambda p: 0,
                lambda p: 0,
                torch_source="F.hardsigmoid (slope 1/6): hardsigmoid_backward, -3 < z < 3 ? g/6 : 0",
                jax_source="jax.nn.hard_sigmoid (slope 1/6): relu6(z + 3)/6, relu6's custom JVP "
                "select(0 < u < 6, g, 0)",
            ),
            FrameworkKink(
                lambda p: (1 - p["shift"]) / p["slope"],
                lambda p: 0,
                lambda p: 0,
                torch_source="F.hardsigmoid (slope 1/6): hardsigmoid_backward, -3 < z < 3 ? g/6 : 0",
                jax_source="jax.nn.hard_sigmoid (slope 1/6): relu6(z + 3)/6, relu6's custom JVP "
                "select(0 < u < 6, g, 0)",
            ),
        ),
        doc=(
            "clip(slope z + shift, 0, 1); the default slope 1/6 is relu6(z + 3)/6 "
            "(PyTorch Hardsigmoid, MobileNetV3); slope 1/5 is Keras 2 / Theano, "
            "slope 1/2 is clip((z + 1)/2, 0, 1) (Courbariaux et al. 2016)"
        ),
        reference="Howard et al. 2019 (MobileNetV3)",
    ),
]

CATALOGUE: dict[str, Activation] = {}
for _record in _RECORDS:
    CATALOGUE[_record.name] = _record
    for _alias in _record.aliases:
        CATALOGUE[_alias] = _record


_FUNCTIONS: dict[str, Fn] = {}


def function_of(record: Activation) -> Fn:
    """The record as kernel data: its formula as a term in ``var`` and ``param`` i."""
    fn = _FUNCTIONS.get(record.name)
    if fn is None:
        symbols = tuple(sp.Symbol(f"_p_{p.name}", real=True) for p in record.parameters)
        body = _sympify(record.formula(Z, **{p.name: s for p, s in zip(record.parameters, symbols)}))
        fn = _FUNCTIONS[record.name] = Fn(record.name, formula(body, Z, symbols),
                                          len(record.parameters), latex=record.latex)
    return fn


def default_term(p: Parameter) -> Term:
    """A parameter's default value as a term (a parameter without one has no default)."""
    if p.default is None:
        raise SpecError(f"parameter {p.name} has no default")
    q = sp.Rational(p.default)
    return num(Fraction(int(q.p), int(q.q)))


def names() -> list[str]:
    """Primary names of all catalogue records, in catalogue order."""
    return [r.name for r in _RECORDS]


def lookup(name: str) -> Activation:
    """The record called ``name`` (or an alias); a SpecError lists the known names."""
    try:
        return CATALOGUE[name.strip().lower()]
    except KeyError:
        raise SpecError(f"unknown activation {name!r}; known: {', '.join(names())}") from None


# --------------------------------------------------------------------------
# Functions of a whole vector.  Their Jacobians are derived in
# :mod:`symnet.networks.properties` (``vector_jacobian``), not typed in here.


@dataclass(frozen=True)
class VectorActivation:
    """A catalogue record for a function of a whole vector ``(z_1, ..., z_n)``.

    ``formula(zs)`` gives the list of outputs ``f_i`` for SymPy inputs ``zs``;
    ``numpy(z)`` evaluates along the last axis of an array.
    """

    name: str
    formula: Callable[[Sequence[sp.Expr]], list[sp.Expr]]
    numpy: Callable[[np.ndarray], np.ndarray]
    latex: str
    aliases: tuple[str, ...] = ()
    doc: str = ""
    reference: str = ""

    def inputs(self, n: int) -> tuple[sp.Symbol, ...]:
        """The input symbols ``z1, ..., zn`` (real)."""
        if not isinstance(n, int) or n < 1:
            raise SpecError(f"{self.name}: the vector length must be a positive integer, got {n!r}")
        return tuple(sp.Symbol(f"z{i}", real=True) for i in range(1, n + 1))

    def outputs(self, n: int) -> sp.Matrix:
        """The column of outputs ``f_1, ..., f_n`` in the symbols of :meth:`inputs`."""
        return sp.Matrix(self.formula(self.inputs(n)))


def _softmax(zs: Sequence[sp.Expr]) -> list[sp.Expr]:
    total = sp.Add(*[sp.exp(z) for z in zs])
    return [sp.exp(z) / total for z in zs]


def np_softmax(z: np.ndarray) -> np.ndarray:
    """Softmax along the last axis, shifted by the maximum so exp never overflows."""
    z = np.asarray(z, dtype=float)
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


VECTOR_RECORDS: list[VectorActivation] = [
    VectorActivation(
        "softmax",
        _softmax,
        np_softmax,
        latex=r"\operatorname{softmax}",
        aliases=("softargmax",),
        doc="f_i = e^{z_i} / sum_j e^{z_j}",
        reference="Bridle 1990",
    ),
]

VECTOR_CATALOGUE: dict[str, VectorActivation] = {}
for _vrecord in VECTOR_RECORDS:
    VECTOR_CATALOGUE[_vrecord.name] = _vrecord
    for _alias in _vrecord.aliases:
        VECTOR_CATALOGUE[_alias] = _vrecord


def lookup_vector(name: str) -> VectorActivation:
    """The vector-function record called ``name`` (or an alias)."""
    try:
        return VECTOR_CATALOGUE[name.strip().lower()]
    except KeyError:
        known = ", ".join(r.name for r in VECTOR_RECORDS)
        raise SpecError(f"unknown vector activation {name!r}; known: {known}") from None


# --------------------------------------------------------------------------
# Spec parsing: NAME or NAME(arg, key=value, ...), values numbers or names.

_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,2})?(/\d+)?$", re.ASCII)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$", re.ASCII)
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
        if text == Z.name:
            raise SpecError(f"{where}: {text!r} is the variable of the formula itself, not a parameter")
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
