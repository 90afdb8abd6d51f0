"""Numeric gradient checks: entry by entry, kink-aware, and a Taylor-remainder order test.

Two independent checks of an analytic gradient ``g`` of a scalar loss ``L`` at a point ``p``.

*Precision.*  Every finite difference is taken in float64 whatever the point's dtype:
the point (every floating array, and the checked parameters) is cast to float64
before differencing, so a float16 or float32 point is checked as tightly as a
float64 one (the report's ``dtype`` still names the point's own dtype).  No step
or tolerance is derived from the input dtype's epsilon; ``eps`` below is always
float64's.

1. **Entry by entry.**  For every entry ``p_i`` (or a seeded sample of them), with a
   step ``h = cbrt(eps) max(1, |p_i|)`` (the step actually taken is
   ``fl(p_i + h) - p_i``), the loss is evaluated at ``p_i +- h`` and ``p_i +- 2h``.
   The central differences at ``h`` and ``2h`` give a Richardson-extrapolated
   derivative *and an estimate of its own error* (truncation ``|c_h - c_2h|``).
   The round-off of the loss is bounded below by an **absolute floor built from the
   sizes of the terms involved**, never from ``|L|`` alone::

       level = NOISE eps max(|L| at the five probes, (|g_i| + |numeric|) (|p_i| + 2h))
               + 2 measured

   where ``measured`` is the round-off of the loss observed directly at this entry:
   the loss is also evaluated at ``p_i +- 3h`` and each side's third difference
   (``h^3 L'''``, about ``eps L'''``, plus round-off; no kink at ``p_i`` enters) is taken.  So a
   loss computed by cancellation (a confident cross-entropy ``log sum e^y - y_t``,
   tiny, whose terms are ~10) gets the round-off of its terms, not of its
   value.  The derivative's noise is ``level / h``.  The tolerance is this noise
   plus the truncation estimate plus ``rtol`` (default ``10 sqrt(eps)``, about
   1.5e-7) relative, so nothing needs tuning per problem and a loss multiplied by
   1e-30 or 1e30 is checked exactly as tightly.

   *Kinks.*  The one-sided differences, extrapolated the same way, estimate the
   right and left derivatives.  When they differ by more than the error estimates
   allow, the loss has a kink at ``p`` along that entry (a ReLU pre-activation at
   exactly 0): the analytic value is accepted when it lies between the one-sided
   values, and the entry is counted as a kink, not a failure.

2. **Taylor remainder.**  Along a random direction ``v``, the remainder
   ``r(h) = |L(p + h v) - L(p) - h <g, v>|`` falls like ``h^2`` when ``g`` is right and
   like ``h`` when it is wrong.  The slope of ``log r`` against ``log h`` is fitted over
   halving steps above the round-off floor: a slope near 2 passes, near 1 fails
   (the threshold is 1.5, midway).  When no slope can be fitted (the remainder
   stays at round-off), the claim must still agree with the measured secant
   ``(L(p +- h v) - L(p)) / h`` at the largest step to within the noise: verdict
   ``flat`` when the loss does not change along ``v`` *and the claimed directional
   derivative* ``<g, v>`` *is ~0 too*, ``linear`` when the loss changes exactly
   linearly and the claim matches; a claimed slope on a flat loss fails.

*Vacuous checks.*  An entry is *resolved* when the claimed value, the numeric one or
a one-sided one exceeds 8 times its noise.  A check in which no entry is resolved
(and the Taylor test did not fail) tested nothing (every gradient is 0 and so
are the finite differences): the report says so (``vacuous`` and ``VACUOUS`` in its
text) while ``ok`` only says that nothing contradicted the claim.

NaN or inf never passes.  The report names every failing parameter and entry with
both values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from symnet.errors import SymnetError

#: Round-off of one loss evaluation, in units of ``eps`` times the size of its terms.
NOISE = 32.0
#: Slope threshold of the Taylor test: 2 for a right gradient, 1 for a wrong one.
TAYLOR_SLOPE = 1.5
#: An entry is resolved when a derivative exceeds this many times its noise.
RESOLVED = 8.0
#: float64: every difference is taken in it, whatever the point's dtype.
EPS = float(np.finfo(np.float64).eps)


class VacuousCheckWarning(UserWarning):
    """A gradient check passed without testing anything (every gradient and difference ~0)."""


@dataclass(frozen=True)
class Entry:
    """One checked entry: analytic and numeric values, one-sided differences, error, tolerance.

    ``noise`` is the finite differences' own resolution for this entry (the
    round-off floor over the step), part of ``tolerance``.
    """

    param: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    forward: float
    backward: float
    error: float
    tolerance: float
    noise: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.param}[{', '.join(str(i) for i in self.index)}]"

    @property
    def resolved(self) -> bool:
        """Whether some derivative here is above the noise (else the entry tested nothing)."""
        values = (self.analytic, self.numeric, self.forward, self.backward)
        if not all(np.isfinite(values)):
            return True
        return max(abs(v) for v in values) > RESOLVED * self.noise

    def __str__(self) -> str:
        return (
            f"{self.where}: analytic {self.analytic:.10g}, numeric {self.numeric:.10g} "
            f"(one-sided {self.forward:.6g} / {self.backward:.6g}); "
            f"error {self.error:.3g}, tolerance {self.tolerance:.3g}"
        )

    def to_dict(self) -> dict:
        return {
            "param": self.param,
            "index": list(self.index),
            "analytic": self.analytic,
            "numeric": self.numeric,
            "forward": self.forward,
            "backward": self.backward,
            "error": self.error,
            "tolerance": self.tolerance,
            "noise": self.noise,
        }


@dataclass(frozen=True)
class Taylor:
    """The Taylor-remainder order test along one random direction.

    ``verdict`` is ``pass`` (slope >= 1.5), ``fail``, ``kink`` (slope 1 but the
    directional derivative lies between the one-sided ones), ``linear`` (the
    remainder stays at round-off while the loss changes: the loss is linear
    along ``v`` and the claim matches it) or ``flat`` (the loss does not change
    along ``v`` beyond round-off *and* the claimed directional derivative is ~0
    too).  A claimed directional derivative that the secants contradict fails,
    flat or not.  ``directional`` is the claimed ``<g, v>``, ``secant`` the
    measured ``(L(p + h v) - L(p)) / h`` at the largest step and ``noise`` its
    round-off.
    """

    verdict: str
    slope: float | None
    steps: tuple[float, ...]
    remainders: tuple[float, ...]
    directional: float = 0.0
    secant: float = 0.0
    noise: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict != "fail"

    def __str__(self) -> str:
        slope = "n/a" if self.slope is None else f"{self.slope:.2f}"
        text = f"Taylor remainder test: {self.verdict} (fitted order {slope}; 2 expected)"
        if self.slope is None:
            text += (f"; claimed directional derivative {self.directional:.6g}, "
                     f"measured {self.secant:.6g} +- {self.noise:.3g}")
        return text


@dataclass(frozen=True)
class GradCheckReport:
    """The outcome of :func:`check`: ``ok`` unless some entry or the Taylor test failed.

    ``vacuous`` is true when nothing was tested: no entry is resolved (every
    claimed, numeric and one-sided derivative is within 8 times its noise, e.g.
    all exactly 0) and the Taylor test, if run, did not fail.  ``ok`` is
    then true (nothing contradicts the claim) but means nothing; the text says
    ``VACUOUS``.  ``dtype`` is the point's dtype; the differences were taken in
    ``computed_in`` (always float64).
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    checked: int
    kinks: int
    kink_entries: tuple[Entry, ...]
    failures: tuple[Entry, ...]
    taylor: Taylor | None
    dtype: str
    step: float
    vacuous: bool = False
    resolved: int = 0
    computed_in: str = "float64"
    measured_noise: float = 0.0

    def __str__(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        if self.vacuous:
            verdict += " but VACUOUS"
        precision = self.dtype if self.dtype == self.computed_in else f"{self.dtype} point, differenced in {self.computed_in}"
        lines = [
            f"Gradient check ({precision}, relative step {self.step:.3g}): {verdict}",
            f"  {self.checked} entries checked ({self.resolved} resolved above round-off), "
            f"max abs error {self.max_abs_error:.3g}, "
            f"max rel error {self.max_rel_error:.3g}, {self.kinks} at kinks",
        ]
        if self.vacuous:
            lines.append("  vacuous: every gradient entry and every finite difference is zero to within "
                         "the round-off of the loss, so nothing was tested")
        for e in self.kink_entries[:5]:
            lines.append(f"  kink {e.where}: analytic {e.analytic:.6g} between one-sided "
                         f"{e.forward:.6g} and {e.backward:.6g}")
        for e in self.failures[:20]:
            lines.append(f"  mismatch {e}")
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more mismatches")
        if self.taylor is not None:
            lines.append(f"  {self.taylor}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        from symnet.render.display import gradcheck_repr

        return gradcheck_repr(self)

    def _repr_html_(self) -> str:
        from symnet.render.display import gradcheck_html

        return gradcheck_html(self)

    def _repr_markdown_(self) -> str:
        from symnet.render.display import gradcheck_markdown

        return gradcheck_markdown(self)

    def _repr_latex_(self) -> str:
        from symnet.render.display import gradcheck_latex

        return gradcheck_latex(self)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "vacuous": self.vacuous,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "checked": self.checked,
            "resolved": self.resolved,
            "kinks": self.kinks,
            "kink_entries": [e.to_dict() for e in self.kink_entries],
            "failures": [e.to_dict() for e in self.failures],
            "taylor": None if self.taylor is None else {
                "verdict": self.taylor.verdict, "slope": self.taylor.slope},
            "dtype": self.dtype,
            "computed_in": self.computed_in,
            "step": self.step,
            "measured_noise": self.measured_noise,
        }


def _float64(value: Any) -> np.ndarray:
    """``value`` as an array; floating (and integer) arrays below float64 become float64."""
    a = np.array(value)
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        if a.dtype.itemsize < 8 or not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float64)
    return a


def check(
    loss: Callable[[dict[str, np.ndarray]], float],
    gradient: dict[str, Any],
    point: dict[str, Any],
    *,
    wrt: list[str] | None = None,
    rtol: float | None = None,
    max_entries: int | None = None,
    taylor: bool = True,
    seed: int = 0,
) -> GradCheckReport:
    """Check ``gradient`` (analytic, keyed like ``point``) of ``loss`` at ``point``.

    Every difference is taken in float64: the point's arrays are cast to float64
    first (a float16 or float32 point is checked as tightly as a float64 one, and
    ``loss`` receives float64 arrays).  Tolerances are not derived from the
    point's dtype; see the module docstring for the absolute round-off floor.

    Args:
        loss: the scalar loss as a function of a dict of arrays (all of ``point``).
        gradient: the claimed gradient for each name in ``wrt``.
        point: the arrays at which to check (any floating dtype).
        wrt: the names to check (default: every name in ``gradient``).
        rtol: relative tolerance (default ``10 sqrt(eps)`` of float64, ~1.5e-7).
        max_entries: check at most this many entries per array (seeded sample).
        taylor: also run the Taylor-remainder order test.
        seed: seeds the entry sample, the Taylor direction and the noise probes.

    Returns:
        A :class:`GradCheckReport`; ``ok`` and ``vacuous`` (nothing was tested).
    """
    wrt = list(gradient) if wrt is None else list(wrt)
    original = {k: np.asarray(v) for k, v in point.items()}
    base = {k: _float64(v) for k, v in point.items()}
    for name in wrt:
        if name not in base:
            raise SymnetError(f"gradient check: no value for {name} in the point")
        if np.shape(gradient[name]) != base[name].shape:
            raise SymnetError(f"gradient check: the gradient for {name} has shape "
                              f"{np.shape(gradient[name])}, the parameter {base[name].shape}")
        if not np.issubdtype(base[name].dtype, np.floating):
            base[name] = base[name].astype(np.float64)
    floating = [original[n].dtype for n in wrt if np.issubdtype(original[n].dtype, np.floating)]
    dtype = np.result_type(*floating) if floating else np.dtype(np.float64)
    eps = EPS
    rel_step = eps ** (1 / 3)
    rtol = 10 * np.sqrt(eps) if rtol is None else rtol
    rng = np.random.default_rng(seed)

    def at(name: str, idx: tuple, value: Any) -> float:
        arr = base[name]
        old = arr[idx]
        arr[idx] = value
        try:
            return float(loss(base))
        finally:
            arr[idx] = old

    f0 = float(loss(base))
    measured = 0.0  # the largest round-off of the loss observed at any entry's probes
    checked, kinks, failures, resolved = 0, [], [], 0
    max_abs = max_rel = 0.0
    for name in wrt:
        arr = base[name]
        g = np.asarray(gradient[name], dtype=np.float64)
        indices = list(np.ndindex(arr.shape))
        if max_entries is not None and len(indices) > max_entries:
            chosen = rng.choice(len(indices), size=max_entries, replace=False)
            indices = [indices[i] for i in sorted(chosen)]
        for idx in indices:
            p = float(arr[idx])
            h_try = rel_step * max(1.0, abs(p))
            # the steps actually taken, in float64
            p1, m1, p2, m2 = p + h_try, p - h_try, p + 2 * h_try, p - 2 * h_try
            hp1, hm1 = p1 - p, p - m1
            hp2, hm2 = p2 - p, p - m2
            fp1, fm1, fp2, fm2 = at(name, idx, p1), at(name, idx, m1), at(name, idx, p2), at(name, idx, m2)
            fp3, fm3 = at(name, idx, p + 3 * h_try), at(name, idx, p - 3 * h_try)
            fwd1, bwd1 = (fp1 - f0) / hp1, (f0 - fm1) / hm1
            fwd2, bwd2 = (fp2 - f0) / hp2, (f0 - fm2) / hm2
            c1 = (fp1 - fm1) / (hp1 + hm1)
            c2 = (fp2 - fm2) / (hp2 + hm2)
            numeric = (4 * c1 - c2) / 3
            a = float(g[idx])
            right, left = 2 * fwd1 - fwd2, 2 * bwd1 - bwd2  # one-sided derivatives
            key = tuple(int(i) for i in idx)
            checked += 1
            if not all(np.isfinite([a, numeric, f0, fp1, fm1, fp2, fm2, fp3, fm3])):
                # a NaN or inf never passes: comparisons with NaN are always False
                failures.append(Entry(name, key, a, numeric, right, left, float("inf"), float("nan"),
                                      float("nan")))
                max_abs = float("inf")
                resolved += 1
                continue
            # the size of the terms: the loss at every probe and the change g h the entry makes
            terms = max(abs(f0), abs(fp1), abs(fm1), abs(fp2), abs(fm2),
                        (abs(a) + abs(numeric)) * (abs(p) + 2 * h_try))
            # round-off seen at this entry: each side's third difference is h^3 L''' (~eps L''')
            # plus round-off, and has no kink (the probes of one side lie on one side of p)
            seen = max(abs(fp3 - 3 * fp2 + 3 * fp1 - f0), abs(fm3 - 3 * fm2 + 3 * fm1 - f0))
            measured = max(measured, seen)
            noise = (NOISE * eps * terms + 2 * seen) / min(hp1, hm1)
            truncation = abs(c1 - c2)
            tol = rtol * max(abs(a), abs(numeric)) + noise + truncation
            if abs(a - numeric) > tol or abs(right - left) > 8 * noise + rtol * max(abs(right), abs(left)) + truncation:
                # before a mismatch or a kink is declared: round-off that the third
                # differences did not show (a loss computed by cancellation rounds in
                # steps), measured as the wobble of the loss about its Taylor polynomial
                wobble = _wobble(at, name, idx, p, ((hp1, fp1, hp2, fp2), (-hm1, fm1, -hm2, fm2)), f0)
                if wobble > seen:
                    seen = wobble
                    measured = max(measured, wobble)
                    noise = (NOISE * eps * terms + 2 * wobble) / min(hp1, hm1)
                    tol = rtol * max(abs(a), abs(numeric)) + noise + truncation
            if abs(right - left) > 8 * noise + rtol * max(abs(right), abs(left)) + truncation:
                lo = min(fwd1, bwd1, right, left)
                hi = max(fwd1, bwd1, right, left)
                err = max(lo - a, a - hi, 0.0)
                entry = Entry(name, key, a, numeric, right, left, err, tol, noise)
                resolved += entry.resolved
                if err <= tol:
                    kinks.append(entry)
                    continue
                failures.append(entry)
            else:
                err = abs(a - numeric)
                entry = Entry(name, key, a, numeric, right, left, err, tol, noise)
                resolved += entry.resolved
                if err > tol:
                    failures.append(entry)
            max_abs = max(max_abs, err)
            denominator = max(abs(a), abs(numeric), noise)
            max_rel = max(max_rel, err / denominator if denominator > 0 else (0.0 if err == 0 else float("inf")))

    result = None
    if taylor and wrt:
        result = _taylor(loss, gradient, base, wrt, eps, f0, measured, rng)
    ok = not failures and (result is None or result.ok)
    # nothing resolved entry by entry: the Taylor test may still see the loss move at its
    # large steps (a step function crossing a jump), which is no local test of g
    vacuous = resolved == 0 and (result is None or result.ok)
    return GradCheckReport(
        ok=ok,
        max_abs_error=float(max_abs),
        max_rel_error=float(max_rel),
        checked=checked,
        kinks=len(kinks),
        kink_entries=tuple(kinks),
        failures=tuple(failures),
        taylor=result,
        dtype=str(dtype),
        step=float(rel_step),
        vacuous=bool(vacuous),
        resolved=int(resolved),
        measured_noise=float(measured),
    )


def _wobble(at, name, idx, p, sides, f0) -> float:
    """Round-off of the loss near ``p``, seen on each side separately (so a kink at ``p``
    is no wobble): the distance of the loss at ``d = h/16, 3h/16`` from the parabola
    through its values at ``0, h, 2h`` on that side; the parabola's own error there is
    a third-order term far below round-off."""
    out = 0.0
    for h1, f1, h2, f2 in sides:
        # q(d) = f0 + b d + c d^2 through (h1, f1) and (h2, f2)
        c = ((f2 - f0) / h2 - (f1 - f0) / h1) / (h2 - h1)
        b = (f1 - f0) / h1 - c * h1
        for k in (1, 3):
            d = k * h1 / 16
            q = (p + d) - p
            f = at(name, idx, p + d)
            if np.isfinite(f):
                out = max(out, abs(f - f0 - b * q - c * q * q))
    return out


def _taylor(loss, gradient, base, wrt, eps, f0, measured, rng) -> Taylor:
    """Fit the order of the remainder ``|L(p + h v) - L(p) - h <g, v>|`` as ``h`` halves."""
    v = {n: rng.standard_normal(base[n].shape) for n in wrt}
    norm = np.sqrt(sum(float(np.sum(a * a)) for a in v.values()))
    v = {n: a / norm for n, a in v.items()}
    slope_g = sum(float(np.sum(np.asarray(gradient[n], dtype=np.float64) * v[n])) for n in wrt)
    size = np.sqrt(sum(float(np.sum(base[n] ** 2)) for n in wrt) / max(
        1, sum(base[n].size for n in wrt)))
    h0 = max(1.0, size)

    def along(h: float) -> tuple[float, float]:
        shifted = dict(base)
        for n in wrt:
            shifted[n] = base[n] + h * v[n]
        # the step actually taken along v
        taken = sum(float(np.sum((shifted[n] - base[n]) * v[n])) for n in wrt)
        return float(loss(shifted)), taken

    def floor_of(f: float, taken: float) -> float:
        return NOISE * eps * max(abs(f), abs(f0), abs(taken * slope_g)) + 2 * measured

    sides, first = {}, {}
    for sign in (1.0, -1.0):
        steps, rems, ones, after = [], [], [], None
        h = h0
        for k in range(40):
            f, taken = along(sign * h)
            if not (np.isfinite(f) and np.isfinite(f0)):
                return Taylor("fail", None, tuple(steps), tuple(rems), slope_g, float("nan"), float("nan"))
            rem = abs(f - f0 - taken * slope_g)
            floor = floor_of(f, taken)
            if k == 0:
                first[sign] = (f, taken, rem, floor)
            if rem > floor:
                steps.append(h)
                rems.append(rem)
                ones.append((f - f0) / taken)
                last_floor = floor
            elif steps:
                after = rem  # the first remainder below the round-off floor
                break
            h /= 2
        sides[sign] = (steps, rems, ones, after, last_floor if steps else 0.0)

    def fit(steps, rems, ones, after, floor) -> float | None:
        if len(steps) >= 2:
            xs, ys = np.log(steps[-5:]), np.log(rems[-5:])
            return float(np.polyfit(xs, ys, 1)[0])
        if len(steps) == 1 and after is not None and rems[0] > 4 * floor:
            # one remainder above round-off, the next (half the step) below it: the
            # fall over one halving bounds the order from below
            return float(min(10.0, np.log2(rems[0] / max(after, rems[0] * 2.0**-10))))
        return None  # at round-off throughout (or within 4x of it)

    slopes = {s: fit(*sides[s]) for s in sides}
    steps, rems = sides[1.0][0], sides[1.0][1]
    f1, taken1, _, floor1 = first[1.0]
    secant = (f1 - f0) / taken1 if taken1 else 0.0
    noise = floor1 / abs(taken1) if taken1 else float("inf")
    known = [s for s in slopes.values() if s is not None]
    if not known:
        # No order can be fitted: the remainder is at round-off, so the claim agrees with
        # the secants.  Flat only if the loss does not move along v *and* neither does
        # the claim (|h <g, v>| within a few round-offs); a claimed slope there fails.
        loss_flat = all(abs(f - f0) <= 4 * floor for (f, _, _, floor) in first.values())
        claim_flat = all(abs(taken * slope_g) <= 4 * floor for (_, taken, _, floor) in first.values())
        if loss_flat:
            verdict = "flat" if claim_flat else "fail"
        else:
            verdict = "linear"
        return Taylor(verdict, None, tuple(steps), tuple(rems), slope_g, secant, noise)
    slope = min(known)
    if slope >= TAYLOR_SLOPE:
        return Taylor("pass", slope, tuple(steps), tuple(rems), slope_g, secant, noise)
    # slope ~1: a kink along v is fine if <g, v> lies between the one-sided derivatives
    right = sides[1.0][2][-1] if sides[1.0][2] else slope_g
    left = sides[-1.0][2][-1] if sides[-1.0][2] else slope_g
    lo, hi = min(right, left), max(right, left)
    margin = 1e-3 * max(abs(lo), abs(hi), 1e-300)
    if hi - lo > margin and lo - margin <= slope_g <= hi + margin:
        return Taylor("kink", slope, tuple(steps), tuple(rems), slope_g, secant, noise)
    return Taylor("fail", slope, tuple(steps), tuple(rems), slope_g, secant, noise)


def check_gradients(g: Any, point: dict[str, Any], **options: Any) -> GradCheckReport:
    """Check a :class:`symnet.networks.backprop.Gradients`' compiled gradients at ``point``.

    ``point`` holds ``x``, ``t``, the weights and any scalar parameters; the
    analytic gradient is ``g.function()`` there, the loss ``g.loss_function()``.
    The point is cast to float64 first, for the compiled gradients as for the
    differences.  Options are those of :func:`check`.
    """
    analytic = g.function()(**{k: _float64(v) for k, v in point.items()})  # float64 gradients too
    loss_fn = g.loss_function()
    gradient = {name: analytic[name] for name in g.parameters}
    return check(lambda arrays: loss_fn(**arrays)["loss"], gradient, point, **options)


__all__ = ["Entry", "GradCheckReport", "Taylor", "VacuousCheckWarning", "check", "check_gradients"]
