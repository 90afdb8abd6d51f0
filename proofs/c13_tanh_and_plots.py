"""C13: tanh squashes a vector elementwise into (-1, 1); every catalogue activation, plotted."""
# seconds: 0.3  (after C7 in the same process)
# together: catalogue

import mpmath
import numpy as np
import sympy as sp

from symnet.networks import activations, properties
from symnet.networks.activations import Z, lambdify_numpy
from symnet.networks.composer import apply_elementwise
from symnet.networks.numeric import Evaluator
from symnet.notes.proofs import EXACT, NUMERIC, Section, Series, plot, sci

CLAIM = "C13"
TITLE = "tanh squashes elementwise into (-1, 1)"
STATEMENT = (
    "tanh squashes a vector elementwise into $(-1, 1)$; its plot over $[-2, 2]$ is the usual "
    "picture. Numeric evaluation matches NumPy; plots of each activation and its derivative."
)

SEED = 13


def _curve(act, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = act.numpy(xs)
    fprime = lambdify_numpy(Z, properties.derivative(act))
    with np.errstate(all="ignore"):
        d = np.broadcast_to(np.asarray(fprime(xs), dtype=float), xs.shape)
    return f, d


def _limits(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    lo, hi = max(lo, -3.2), min(hi, 3.2)
    pad = 0.08 * max(hi - lo, 1.0)
    return lo - pad, hi + pad


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    tanh = activations.lookup("tanh").bind()
    r = properties.value_range(tanh)
    s.fact(
        "symnet.networks.properties derives the range of tanh: the open interval "
        f"$({sp.latex(r.lower)}, {sp.latex(r.upper)})$, neither end attained",
        r.lower == -1 and r.upper == 1 and not r.lower_closed and not r.upper_closed, kind=EXACT,
    )
    s.prove("Why $|\\tanh z| < 1$", 1 - sp.tanh(Z) ** 2, [
        (1 / sp.cosh(Z) ** 2, "$\\cosh^2 z - \\sinh^2 z = 1$"),
    ])
    s.fact(
        "$1/\\cosh^2 z > 0$ for real $z$ (SymPy's assumptions), so $\\tanh^2 z < 1$",
        (1 / sp.cosh(Z) ** 2).is_positive is True, kind=EXACT,
    )

    # a vector, elementwise: the symnet expression at 50 digits against NumPy
    rng = np.random.default_rng(SEED)
    v = np.concatenate([rng.normal(0, 2, 6), [20.0, -20.0]]).reshape(1, -1)
    x = sp.MatrixSymbol("x", 1, v.shape[1])
    expr = apply_elementwise(tanh, x)
    precise = Evaluator({x: v}, {}, {}, precise=True)(expr)
    fast = Evaluator({x: v}, {}, {})(expr)
    reference = np.tanh(v)
    rows, inside, agree = [], True, True
    for i in range(v.shape[1]):
        p = precise[0, i] if hasattr(precise, "shape") else precise[i]
        with mpmath.workdps(50):
            gap = 1 - abs(mpmath.mpf(p))
            inside = inside and gap > 0
            err = abs(float(fast[0, i]) - float(reference[0, i]))
            agree = agree and err <= 1e-15 and abs(float(p) - reference[0, i]) <= 2e-16
            rows.append([f"${v[0, i]:.4f}$", f"${mpmath.nstr(p, 18)}$", f"${reference[0, i]:.16f}$",
                         sci(err), mpmath.nstr(gap, 3)])
    s.table(
        ["$x_i$", "symnet, 50 digits", "numpy.tanh", "$|$symnet $-$ numpy$|$", "$1 - |\\tanh x_i|$"],
        rows,
        f"$\\tanh(\\mathbf{{x}})$ for a seeded vector $\\mathbf{{x}}$ (seed {SEED}), evaluated from "
        "the symnet expression elementwise: in float64 (difference from numpy.tanh) and at 50 "
        "digits. Every entry lies strictly inside $(-1, 1)$; note that in float64 "
        "$\\tanh(\\pm 20)$ rounds to exactly $\\pm 1$, while the true value is "
        "$8.5\\times10^{-18}$ away.",
        kind=NUMERIC, ok=inside and agree,
    )

    xs = np.linspace(-2, 2, 161)
    f, d = _curve(tanh, xs)
    big = plot([Series(xs, f, "solid", "blue"), Series(xs, d, "dashed", "red"),
                Series([-2, 2], [1, 1], "thin", "gray"), Series([-2, 2], [-1, -1], "thin", "gray")],
               (-2, 2), (-1.25, 1.25), width=90, height=50, xticks=(-2, -1, 0, 1, 2),
               yticks=(-1, 0, 1))
    s.figure(big, "$\\tanh z$ (blue) and $\\tanh' z = 1 - \\tanh^2 z$ (red, dashed) over "
             "$[-2, 2]$; the grey lines are the asymptotes $\\pm 1$.")

    pics = []
    xs = np.linspace(-3, 3, 121)
    for name in activations.names():
        act = activations.lookup(name).bind()
        if name == "affine":
            act = activations.lookup(name).bind(a=sp.Rational(1, 2), c=sp.Rational(1, 2))
        f, d = _curve(act, xs)
        lo, hi = _limits(np.concatenate([f, d]))
        title = name.replace("_", " ") + (" ($a = c = \\frac12$)" if name == "affine" else "")
        pics.append(plot([Series(xs, f, "solid", "blue"), Series(xs, d, "dashed", "red")],
                         (-3, 3), (lo, hi), width=36, height=22, title=title,
                         xticks=(-3, 0, 3)))
    s.figure(pics, "Every activation of the catalogue (blue) and its derivative as symnet derives "
             "it (red, dashed) on $[-3, 3]$; at a kink the derivative follows the subgradient "
             "convention, and the step's derivative is 0 off its jump (a Dirac delta at 0).",
             per_row=4)
    return s
