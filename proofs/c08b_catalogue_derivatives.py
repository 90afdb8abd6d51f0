"""C8: every catalogue derivative derived, written in the output, and checked by finite differences."""
# seconds: 1.3  (after C7 in the same process)
# together: catalogue

import numpy as np
import sympy as sp
from sympy.core.relational import Relational

from symnet.kernel import PROVED, Context
from symnet.networks import activations, properties
from symnet.networks.activations import Z, lambdify_numpy
from symnet.networks.properties import Y
from symnet.notes.proofs import EXACT, NUMERIC, Section, sci

CLAIM = "C8"
TITLE = "The derivatives backprop uses"
STATEMENT = (
    "Derivatives used by backprop: $\\tanh' = 1 - \\tanh^2$, $\\sigma' = \\sigma(1 - \\sigma)$, "
    "$\\operatorname{relu}' = \\operatorname{step}$, $\\operatorname{softplus}' = \\sigma$, ...: "
    "each derived symbolically, expressed in the function's own output where possible, checked "
    "against finite differences."
)

SEED = 8
_NONSMOOTH = (sp.Piecewise, sp.Abs, sp.Max, sp.Min, sp.Heaviside, sp.sign)


def breakpoints(body: sp.Expr) -> set:
    """Where the formula switches pieces (zeros of the relations in its piecewise form)."""
    points = set()
    for rel in properties.piecewise_form(body).atoms(Relational):
        try:
            points |= {p for p in sp.solve(rel.lhs - rel.rhs, Z) if p.is_real}
        except NotImplementedError:
            points.add(sp.nan)
    return points


def output_form_check(act, d: sp.Expr, g: sp.Expr) -> tuple[str, str]:
    """Kernel verdict on f'(z) = g(f(z)); split at 0 when 0 is the only breakpoint."""
    body = act.body
    points = breakpoints(body) if body.has(*_NONSMOOTH) else set()
    ctx = Context(seed=SEED)
    if points == {0}:
        p = sp.Symbol("p", positive=True)
        verdicts = []
        for z in (p, -p):
            c = ctx.check(d.xreplace({Z: z}), g.xreplace({Y: body.xreplace({Z: z})}))
            verdicts.append(c.verdict)
        at0 = sp.nsimplify(d.xreplace({Z: 0})) == sp.nsimplify(g.xreplace({Y: body.xreplace({Z: 0})}))
        verdict = PROVED if all(v == PROVED for v in verdicts) and at0 else "unproved"
        return verdict, "on $z>0$, $z<0$; at 0 exact"
    c = ctx.check(d, g.xreplace({Y: body}))
    return c.verdict, ""


def _tex(e: sp.Expr) -> str:
    """LaTeX of a formula, long floats (SELU's constants) shown to 5 digits."""
    e = e.xreplace({f: sp.Float(f, 5) for f in e.atoms(sp.Float)})
    return sp.latex(e)


def finite_difference_error(act, d: sp.Expr, zs: np.ndarray, h: float = 1e-6) -> float:
    """max |f'(z) - (f(z+h) - f(z-h))/2h| / (1 + |f'(z)|) at the sample points."""
    fprime = lambdify_numpy(Z, d)
    with np.errstate(all="ignore"):
        exact = np.broadcast_to(np.asarray(fprime(zs), dtype=float), zs.shape)
        fd = (act.numpy(zs + h) - act.numpy(zs - h)) / (2 * h)
    return float(np.max(np.abs(exact - fd) / (1 + np.abs(exact))))


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    s.text(
        "For every activation of the catalogue: $f'$ derived by symnet.networks.properties (SymPy's "
        "derivative of each piece, with the subgradient convention at a kink); $f'$ written in "
        "the output $y = f(z)$ where symnet finds such a form; the kernel's verdict on "
        "$f'(z) = g(f(z))$; and the largest relative difference between $f'$ and a central "
        "finite difference ($h = 10^{-6}$) at 400 seeded points of $[-4, 4]$ away from kinks."
    )
    rng = np.random.default_rng(SEED)
    base = rng.uniform(-4, 4, 400)
    with_form, without_form, ok_fd, ok_kernel = [], [], True, True
    required = {"tanh", "sigmoid", "softplus", "arctan", "identity", "affine", "leaky_relu", "elu"}
    for name in activations.names():
        act = activations.lookup(name).bind()
        d = properties.derivative(act)
        g = properties.derivative_in_output(act)
        if name == "affine":
            err = 0.0 if sp.simplify(d - sp.diff(act.body, Z)) == 0 else float("nan")
        else:
            pts = [float(k.point) for k in properties.nondifferentiable(act)]
            zs = base[np.all([np.abs(base - p_) > 1e-3 for p_ in pts], axis=0)] if pts else base
            err = finite_difference_error(act, d, zs)
            ok_fd = ok_fd and err < 1e-6
        label = name.replace("_", " ")
        if g is None:
            without_form.append([label, f"${_tex(d)}$", sci(err, 2)])
            continue
        verdict, note = output_form_check(act, d, g)
        if name in required and verdict != PROVED:
            ok_kernel = False
        kernel = ("$\\checkmark$" if verdict == PROVED else verdict) + (" (split at 0)" if note else "")
        with_form.append([label, f"${_tex(d)}$", f"${_tex(g)}$", kernel, sci(err, 2)])
    s.table(
        ["$f$", "$f'(z)$, derived", "$f'$ in $y = f(z)$", "kernel", "finite diff."],
        with_form,
        "Activations whose derivative symnet writes in their own output $y = f(z)$. The kernel "
        "column is its verdict on $f'(z) = g(f(z))$, $g$ the form in $y$ (for formulas with a "
        "kink only at 0: on each side, and at 0 exactly). The finite-difference column is "
        "numeric evidence.",
        kind=NUMERIC, ok=ok_fd and ok_kernel, align="lllll",
    )
    s.table(
        ["$f$", "$f'(z)$, derived", "finite diff."],
        without_form,
        "Activations with no derivative in terms of the output (not one-to-one, or no form "
        "found): the derived $f'$ and its finite-difference check (numeric evidence).",
        kind=NUMERIC, ok=ok_fd, align="lll",
    )

    # relu' = step, except at 0
    relu = activations.lookup("relu").bind()
    step = activations.lookup("step").bind()
    p = sp.Symbol("p", positive=True)
    right = sp.diff(relu.body.xreplace({Z: p}), p) == step.body.xreplace({Z: p}) == 1
    left = sp.diff(relu.body.xreplace({Z: -p}), p) == step.body.xreplace({Z: -p}) == 0
    d_relu = properties.derivative(relu)
    s.fact(
        "$\\operatorname{relu}'(z) = 1 = \\operatorname{step}(z)$ for every $z > 0$ and "
        "$\\operatorname{relu}'(z) = 0 = \\operatorname{step}(z)$ for every $z < 0$: "
        "$\\operatorname{relu}' = \\operatorname{step}$ off 0. At the kink symnet's convention is "
        f"$\\operatorname{{relu}}'(0) = {sp.latex(d_relu.xreplace({Z: 0}))}$ while "
        f"$\\operatorname{{step}}(0) = {sp.latex(step.body.xreplace({Z: 0}))}$ (and SymPy's own "
        "Heaviside gives 1/2): the identity holds almost everywhere, which is all backprop uses",
        right and left and d_relu.xreplace({Z: 0}) == 0 and step.body.xreplace({Z: 0}) == 1,
        kind=EXACT,
    )
    return s
