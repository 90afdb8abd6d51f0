"""C10: the sigmoid is a squashing function; steep sigmoid sums approximate a continuous function."""
# seconds: 0.3  (after C7 in the same process)
# together: catalogue

import numpy as np
import sympy as sp

from symnet.networks import activations, properties
from symnet.networks.activations import Z
from symnet.networks.composer import Network
from symnet.notes.proofs import EXACT, NUMERIC, Section, Series, plot, sci

CLAIM = "C10"
TITLE = "Two layers with a squashing activation approximate any continuous function"
STATEMENT = (
    "A two-layer network with a nonlinear (squashing) activation and enough hidden units "
    "approximates any continuous function (Hornik, Stinchcombe and White 1989: a squashing "
    "function is non-decreasing with limits 0 at $-\\infty$ and 1 at $+\\infty$)."
)

LO, HI = -2.0, 2.0
UNITS = (4, 8, 16, 32, 64, 128)
STEEPNESS = 8.0  # k = STEEPNESS / spacing: each sigmoid rises over a fraction of a cell


def target(x: np.ndarray) -> np.ndarray:
    """The continuous function to approximate."""
    return np.sin(3 * x) + 0.3 * x**2


def staircase_network(n: int) -> tuple[Network, dict[str, np.ndarray]]:
    """A 1-n-1 sigmoid network: f(x_0) + sum_i (f(x_i) - f(x_{i-1})) s(k (x - m_i))."""
    knots = np.linspace(LO, HI, n + 1)
    mids = (knots[:-1] + knots[1:]) / 2
    k = STEEPNESS * n / (HI - LO)
    values = target(knots)
    weights = {
        "W1": np.full((1, n), k),
        "b1": (-k * mids).reshape(1, n),
        "W2": np.diff(values).reshape(n, 1),
        "b2": np.array([[values[0]]]),
    }
    return Network.dense([1, n, 1], ["sigmoid", "identity"]), weights


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    sig = activations.lookup("sigmoid").bind()
    body = sig.body
    low, high = sp.limit(body, Z, -sp.oo), sp.limit(body, Z, sp.oo)
    s.fact(
        f"$\\lim_{{z\\to-\\infty}} \\sigma(z) = {sp.latex(low)}$ and "
        f"$\\lim_{{z\\to\\infty}} \\sigma(z) = {sp.latex(high)}$ (sympy.limit)",
        low == 0 and high == 1, kind=EXACT,
    )
    d = sp.diff(body, Z)
    y = sp.exp(-Z)
    s.prove("The sigmoid's derivative", d, [
        (body * (1 - body), "written in the sigmoid's own output"),
        (y / (1 + y) ** 2, "a quotient of positive terms"),
    ])
    s.fact(
        f"$\\sigma'(z) = {sp.latex(d)} > 0$ for every real $z$ (SymPy's assumptions decide the "
        "sign), so $\\sigma$ is increasing: with the limits above, $\\sigma$ is a squashing function",
        d.is_positive is True, kind=EXACT,
    )
    squashing = [n.replace("_", " ") for n in activations.names()
                 if properties.squashing(activations.lookup(n).bind())]
    s.fact(
        "symnet.networks.properties classifies the catalogue: the squashing functions are "
        + ", ".join(squashing),
        "sigmoid" in squashing and "tanh" not in squashing, kind=EXACT,
    )
    s.text(
        "The theorem is an existence statement. A constructive illustration: on "
        f"$[{LO:g}, {HI:g}]$ approximate $f(x) = \\sin 3x + 0.3x^2$ by a 1-$n$-1 network whose "
        "hidden unit $i$ is a steep sigmoid switching on at the midpoint $m_i$ of the $i$-th of "
        "$n$ equal cells, weighted by the increase of $f$ across that cell: "
        "$g_n(x) = f(x_0) + \\sum_{i=1}^n (f(x_i) - f(x_{i-1}))\\,\\sigma(k(x - m_i))$ with "
        f"$k = {STEEPNESS:g}\\,n/{HI - LO:g}$. These are the weights of an ordinary symnet "
        "network (Network.dense([1, n, 1], [sigmoid, identity])), evaluated by its forward pass."
    )
    xs = np.linspace(LO, HI, 4001).reshape(-1, 1)
    fx = target(xs)
    rows, errors, curves = [], [], {}
    for n in UNITS:
        net, w = staircase_network(n)
        gx = net.forward(xs, w)
        err = float(np.max(np.abs(gx - fx)))
        errors.append(err)
        curves[n] = gx.ravel()
        rows.append([str(n), f"${w['W1'][0, 0]:g}$", sci(err)])
    shrinking = all(a > b for a, b in zip(errors, errors[1:]))
    s.table(
        ["hidden units $n$", "steepness $k$", "$\\max_x |g_n(x) - f(x)|$"],
        rows,
        "Largest error on 4001 points of the interval: it shrinks as hidden units are added "
        "(roughly halving as $n$ doubles).",
        kind=NUMERIC, ok=shrinking and errors[-1] < 0.05,
    )
    x = xs.ravel()
    pics = []
    for n in (4, 16):
        pics.append(plot([Series(x, fx.ravel(), "solid", "black"), Series(x, curves[n], "thin", "red")],
                         (LO, HI), (-1.3, 2.3), width=70, height=40, title=f"$n = {n}$",
                         xticks=(LO, 0, HI), yticks=(-1, 0, 1, 2)))
    s.figure(pics, "$f$ (black) and the network $g_n$ (red) for $n = 4$ and $n = 16$ hidden units.",
             per_row=2)
    return s
