"""Numeric gradient checks: entry by entry, kink-aware, and a Taylor-remainder order test.

Two independent checks of an analytic gradient ``g`` of a scalar loss ``L`` at a point ``p``:

1. **Entry by entry.**  For every entry ``p_i`` (or a seeded sample of them), with a
   step ``h = cbrt(eps) max(1, |p_i|)`` chosen for the dtype (``eps`` its machine
   epsilon; the step actually taken is ``fl(p_i + h) - p_i``), the loss is evaluated
   at ``p_i +- h`` and ``p_i +- 2h``.  The central differences at ``h`` and ``2h``
   give a Richardson-extrapolated derivative *and an estimate of its own error*;
   round-off is bounded by ``eps |L| / h``.  The tolerance is built from these
   estimates plus ``10 sqrt(eps)`` relative, so nothing needs tuning per problem.

   *Kinks.*  The one-sided differences, extrapolated the same way, estimate the
   right and left derivatives.  When they differ by more than the error estimates
   allow, the loss has a kink at ``p`` along that entry (a ReLU pre-activation at
   exactly 0): the analytic value is accepted when it lies between the one-sided
   values, and the entry is counted as a kink, not a failure.

2. **Taylor remainder.**  Along a random direction ``v``, the remainder
   ``r(h) = |L(p + h v) - L(p) - h <g, v>|`` falls like ``h^2`` when ``g`` is right and
   like ``h`` when it is wrong.  The slope of ``log r`` against ``log h`` is fitted over
   halving steps above the round-off floor: a slope near 2 passes, near 1 fails
   (the threshold is 1.5, midway).  No tolerance is involved.

The report names every failing parameter and entry with both values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SymnetError

#: Round-off of one loss evaluation, in units of ``eps |L|`` (sums and depth add up).
NOISE = 32.0
#: Slope threshold of the Taylor test: 2 for a right gradient, 1 for a wrong one.
TAYLOR_SLOPE = 1.5


@dataclass(frozen=True)
class Entry:
    """One checked entry: analytic and numeric values, one-sided differences, error, tolerance."""

    param: str
    index: tuple[int, ...]
    analytic: float
    numeric: float
    forward: float
    backward: float
    error: float
    tolerance: float

    @property
    def where(self) -> str:
        return f"{self.param}[{', '.join(str(i) for i in self.index)}]"

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
        }


@dataclass(frozen=True)
class Taylor:
    """The Taylor-remainder order test along one random direction.

    ``verdict`` is ``pass`` (slope >= 1.5), ``fail``, ``kink`` (slope 1 but the
    directional derivative lies between the one-sided ones) or ``flat`` (the
    remainder stays at round-off level: nothing contradicts the gradient).
    """

    verdict: str
    slope: float | None
    steps: tuple[float, ...]
    remainders: tuple[float, ...]

    @property
    def ok(self) -> bool:
        return self.verdict != "fail"

    def __str__(self) -> str:
        slope = "n/a" if self.slope is None else f"{self.slope:.2f}"
        return f"Taylor remainder test: {self.verdict} (fitted order {slope}; 2 expected)"


@dataclass(frozen=True)
class GradCheckReport:
    """The outcome of :func:`check`: ``ok`` unless some entry or the Taylor test failed."""

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

    def __str__(self) -> str:
        lines = [
            f"Gradient check ({self.dtype}, relative step {self.step:.3g}): "
            + ("passed" if self.ok else "FAILED"),
            f"  {self.checked} entries checked, max abs error {self.max_abs_error:.3g}, "
            f"max rel error {self.max_rel_error:.3g}, {self.kinks} at kinks",
        ]
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

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "checked": self.checked,
            "kinks": self.kinks,
            "kink_entries": [e.to_dict() for e in self.kink_entries],
            "failures": [e.to_dict() for e in self.failures],
            "taylor": None if self.taylor is None else {
                "verdict": self.taylor.verdict, "slope": self.taylor.slope},
            "dtype": self.dtype,
            "step": self.step,
        }


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

    Args:
        loss: the scalar loss as a function of a dict of arrays (all of ``point``).
        gradient: the claimed gradient for each name in ``wrt``.
        point: the arrays at which to check; their dtype sets the step and tolerances.
        wrt: the names to check (default: every name in ``gradient``).
        rtol: relative tolerance (default ``10 sqrt(eps)`` of the dtype).
        max_entries: check at most this many entries per array (seeded sample).
        taylor: also run the Taylor-remainder order test.
        seed: seeds the entry sample and the Taylor direction.
    """
    wrt = list(gradient) if wrt is None else list(wrt)
    base = {k: np.array(v) for k, v in point.items()}
    for name in wrt:
        if name not in base:
            raise SymnetError(f"gradient check: no value for {name} in the point")
        if np.shape(gradient[name]) != base[name].shape:
            raise SymnetError(f"gradient check: the gradient for {name} has shape "
                              f"{np.shape(gradient[name])}, the parameter {base[name].shape}")
        if not np.issubdtype(base[name].dtype, np.floating):
            base[name] = base[name].astype(np.float64)
    dtype = np.result_type(*[base[n].dtype for n in wrt]) if wrt else np.dtype(np.float64)
    eps = float(np.finfo(dtype).eps)
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
    checked, kinks, failures = 0, [], []
    max_abs = max_rel = 0.0
    for name in wrt:
        arr = base[name]
        g = np.asarray(gradient[name], dtype=np.float64)
        indices = list(np.ndindex(arr.shape))
        if max_entries is not None and len(indices) > max_entries:
            chosen = rng.choice(len(indices), size=max_entries, replace=False)
            indices = [indices[i] for i in sorted(chosen)]
        for idx in indices:
            p = arr[idx]
            h_try = rel_step * max(1.0, abs(float(p)))
            # the steps actually taken, in the array's dtype
            p1, m1 = dtype.type(p + h_try), dtype.type(p - h_try)
            p2, m2 = dtype.type(p + 2 * h_try), dtype.type(p - 2 * h_try)
            hp1, hm1 = float(p1) - float(p), float(p) - float(m1)
            hp2, hm2 = float(p2) - float(p), float(p) - float(m2)
            fp1, fm1, fp2, fm2 = at(name, idx, p1), at(name, idx, m1), at(name, idx, p2), at(name, idx, m2)
            fwd1, bwd1 = (fp1 - f0) / hp1, (f0 - fm1) / hm1
            fwd2, bwd2 = (fp2 - f0) / hp2, (f0 - fm2) / hm2
            c1 = (fp1 - fm1) / (hp1 + hm1)
            c2 = (fp2 - fm2) / (hp2 + hm2)
            numeric = (4 * c1 - c2) / 3
            scale = max(abs(f0), abs(fp1), abs(fm1), abs(fp2), abs(fm2))
            noise = NOISE * eps * scale / min(hp1, hm1)
            truncation = abs(c1 - c2)
            a = float(g[idx])
            tol = rtol * max(abs(a), abs(numeric)) + noise + truncation
            right, left = 2 * fwd1 - fwd2, 2 * bwd1 - bwd2  # one-sided derivatives
            checked += 1
            if not all(np.isfinite([a, numeric, f0, fp1, fm1, fp2, fm2])):
                # a NaN or inf never passes: comparisons with NaN are always False
                failures.append(Entry(name, tuple(int(i) for i in idx), a, numeric, right, left, float("inf"), tol))
                max_abs = float("inf")
                continue
            if abs(right - left) > 8 * noise + rtol * max(abs(right), abs(left)) + truncation:
                lo = min(fwd1, bwd1, right, left)
                hi = max(fwd1, bwd1, right, left)
                err = max(lo - a, a - hi, 0.0)
                entry = Entry(name, tuple(int(i) for i in idx), a, numeric, right, left, err, tol)
                if err <= tol:
                    kinks.append(entry)
                    continue
                failures.append(entry)
            else:
                err = abs(a - numeric)
                if err > tol:
                    failures.append(Entry(name, tuple(int(i) for i in idx), a, numeric, right, left, err, tol))
            max_abs = max(max_abs, err)
            denominator = max(abs(a), abs(numeric), noise)
            max_rel = max(max_rel, err / denominator if denominator > 0 else (0.0 if err == 0 else float("inf")))

    result = None
    if taylor and wrt:
        result = _taylor(loss, gradient, base, wrt, dtype, eps, f0, rng)
    ok = not failures and (result is None or result.ok)
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
    )


def _taylor(loss, gradient, base, wrt, dtype, eps, f0, rng) -> Taylor:
    """Fit the order of the remainder ``|L(p + h v) - L(p) - h <g, v>|`` as ``h`` halves."""
    v = {n: rng.standard_normal(base[n].shape) for n in wrt}
    norm = np.sqrt(sum(float(np.sum(a * a)) for a in v.values()))
    v = {n: a / norm for n, a in v.items()}
    slope_g = sum(float(np.sum(np.asarray(gradient[n], dtype=np.float64) * v[n])) for n in wrt)
    size = np.sqrt(sum(float(np.sum(np.asarray(base[n], dtype=np.float64) ** 2)) for n in wrt) / max(
        1, sum(base[n].size for n in wrt)))
    h0 = max(1.0, size)

    def along(h: float) -> tuple[float, float]:
        shifted = dict(base)
        for n in wrt:
            shifted[n] = (base[n] + h * v[n]).astype(dtype)
        # the step actually taken along v, measured in the dtype
        taken = sum(float(np.sum((shifted[n].astype(np.float64) - base[n]) * v[n])) for n in wrt)
        return float(loss(shifted)), taken

    sides = {}
    for sign in (1.0, -1.0):
        steps, rems, ones = [], [], []
        h = h0
        for _ in range(40):
            f, taken = along(sign * h)
            rem = abs(f - f0 - taken * slope_g)
            floor = 30 * eps * (abs(f) + abs(f0) + abs(taken * slope_g))
            if rem > floor:
                steps.append(h)
                rems.append(rem)
                ones.append((f - f0) / taken)
            elif steps:
                break  # below the round-off floor from here on
            h /= 2
        sides[sign] = (steps, rems, ones)

    def fit(steps, rems) -> float | None:
        if len(steps) < 3:
            return None
        xs, ys = np.log(steps[-5:]), np.log(rems[-5:])
        return float(np.polyfit(xs, ys, 1)[0])

    slopes = {s: fit(*sides[s][:2]) for s in sides}
    steps, rems, _ = sides[1.0]
    known = [s for s in slopes.values() if s is not None]
    if not known:
        return Taylor("flat", None, tuple(steps), tuple(rems))
    slope = min(known)
    if slope >= TAYLOR_SLOPE:
        return Taylor("pass", slope, tuple(steps), tuple(rems))
    # slope ~1: a kink along v is fine if <g, v> lies between the one-sided derivatives
    right = sides[1.0][2][-1] if sides[1.0][2] else slope_g
    left = sides[-1.0][2][-1] if sides[-1.0][2] else slope_g
    lo, hi = min(right, left), max(right, left)
    margin = 1e-3 * max(abs(lo), abs(hi), 1e-300)
    if hi - lo > margin and lo - margin <= slope_g <= hi + margin:
        return Taylor("kink", slope, tuple(steps), tuple(rems))
    return Taylor("fail", slope, tuple(steps), tuple(rems))


def check_gradients(g: Any, point: dict[str, Any], **options: Any) -> GradCheckReport:
    """Check a :class:`symnet.backprop.Gradients`' compiled gradients at ``point``.

    ``point`` holds ``x``, ``t``, the weights and any scalar parameters; the
    analytic gradient is ``g.function()`` there, the loss ``g.loss_function()``.
    Options are those of :func:`check`.
    """
    analytic = g.function()(**point)
    loss_fn = g.loss_function()
    gradient = {name: analytic[name] for name in g.parameters}
    return check(lambda arrays: loss_fn(**arrays)["loss"], gradient, point, **options)


__all__ = ["Entry", "GradCheckReport", "Taylor", "check", "check_gradients"]
