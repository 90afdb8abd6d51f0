"""Assertions for other people's test suites; failures read well in pytest.

    from symnet import Network
    from symnet.testing import assert_collapses, assert_not_affine

    def test_linear_stack():
        assert_collapses(Network.dense([3, 4, 2]))

Each helper returns what it established (the collapse result, the witness,
the gradient-check reports, the checked file) and raises
:class:`SymnetAssertionError` (an ``AssertionError``) whose message is the
rendered report: the failing step, the kernel's reason, the counterexample.
The helpers hide their own frames from pytest's traceback
(``__tracebackhide__``); the pytest plugin (:mod:`symnet.testing.pytest_plugin`,
registered automatically) prints the report without ``E`` prefixes.

Nothing here decides a step: collapse and backprop derivations and ``.deriv``
files are decided by the kernel; gradients are compared with finite
differences by :mod:`symnet.testing.gradcheck`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from symnet.networks.composer import Network

__all__ = [
    "SymnetAssertionError",
    "assert_collapses",
    "assert_derivation",
    "assert_gradients_match",
    "assert_not_affine",
    "assert_proved",
]


class SymnetAssertionError(AssertionError):
    """A failed symnet assertion; ``str()`` is the full report (also ``report``).

    ``headline`` is its first line (what pytest's short summary shows).
    """

    def __init__(self, headline: str, details: str = "", report: str | None = None):
        self.headline = headline
        if report is None:
            report = headline + ("\n" + details if details else "")
        self.report = report.rstrip("\n")
        super().__init__(self.report)

    def __reduce__(self):  # picklable, e.g. across processes
        return (type(self), (self.headline, "", self.report))


# ---------------------------------------------------------------------------
# Rendering


def _value(v: Any) -> str:
    from symnet.notes.checkfile import format_value

    if isinstance(v, np.ndarray):
        v = v.tolist()
    return format_value(v)


def _counterexample_text(ce: dict, indent: str = "    ") -> list[str]:
    from symnet.notes.checkfile import counterexample_lines

    return counterexample_lines(ce, indent)


def _failing_steps(derivation: Any) -> str:
    """Every step of ``derivation`` that is not proved: the step, the kernel's reason, the instance."""
    from symnet.render.printing import text

    lines = []
    for chain in derivation.chains:
        prev = chain.lhs
        for step in chain.steps:
            if step.verdict != "proved":
                where = f" in '{chain.title}'" if chain.title else ""
                lines.append(f"step {step.verdict}{where}:")
                lines.append(f"      {text(prev)}")
                lines.append(f"    = {text(step.expr)}" + (f"    ({step.reason})" if step.reason else ""))
                if step.check.detail:
                    lines.append(f"    {step.check.detail}")
                ce = step.check.counterexample
                if ce:
                    lines += _counterexample_text(ce)
            prev = step.expr
    return "\n".join(lines)


def _derivation_of(obj: Any) -> Any:
    from symnet.notes.derivation import Derivation

    if isinstance(obj, Derivation):
        return obj
    d = getattr(obj, "derivation", None)
    if isinstance(d, Derivation):
        return d
    raise TypeError(f"expected a Derivation or an object with a .derivation, got {type(obj).__name__}")


# ---------------------------------------------------------------------------
# Collapse


def assert_collapses(net: Network, **options: Any):
    """Assert that ``net`` computes one affine map ``x W' + b'``, every step proved by the kernel.

    Args:
        net: a network from :meth:`Network.dense`.
        options: passed to :func:`symnet.networks.collapse` (``style``, ``trials``, ``seed``).

    Returns:
        The :class:`~symnet.networks.collapse.CollapseResult` (``.W``, ``.b``, ``.derivation``).
    """
    __tracebackhide__ = True
    from symnet.networks.collapse import collapse

    result = collapse(net, **options)
    if not result.collapsible:
        bad = [f"layer {layer.index} ({layer.activation.spec})" for layer in net.layers
               if not layer.activation.is_affine]
        details = []
        w = result.witness
        if w is not None:
            details += [
                "witness (confirmed at 50 digits): F(t a + (1-t) b) != t F(a) + (1-t) F(b) with",
                f"    t = {w.t}",
                f"    a = {_value(w.input_a)}",
                f"    b = {_value(w.input_b)}",
                *(f"    {k} = {_value(v)}" for k, v in w.weights.items()),
                *(f"    {k} = {v:.4g}" for k, v in w.parameters.items()),
                f"    F(t a + (1-t) b)   = {_value(w.lhs)}",
                f"    t F(a) + (1-t) F(b) = {_value(w.rhs)}",
            ]
        raise SymnetAssertionError(f"{net!r} does not collapse: nonlinear " + ", ".join(bad), "\n".join(details))
    if result.derivation.verdict != "proved":
        raise SymnetAssertionError(
            f"collapse of {net!r} is {result.derivation.verdict}, not proved",
            _failing_steps(result.derivation),
        )
    return result


def assert_not_affine(net: Network, seed: int = 0):
    """Assert that no affine map computes ``net``: a witness breaking the affine identity exists.

    The witness (weights, inputs ``a, b`` and ``t`` with ``F(t a + (1-t) b) !=
    t F(a) + (1-t) F(b)``) is found by :func:`symnet.networks.collapse`, confirmed there at
    50 digits, and recomputed here with NumPy.

    Returns:
        The :class:`~symnet.networks.collapse.Witness`.
    """
    __tracebackhide__ = True
    from symnet.networks.collapse import collapse

    result = collapse(net, seed=seed)
    if result.collapsible:
        from symnet.render.printing import text

        raise SymnetAssertionError(
            f"{net!r} is affine: it collapses to x W' + b' (every step proved)"
            if result.derivation.ok else f"{net!r} is affine: it collapses to x W' + b'",
            f"W' = {text(result.W)}\nb' = {text(result.b)}",
        )
    w = result.witness
    if w is None:
        hint = " (symbolic widths were evaluated as 2)" if net.has_symbolic_widths else ""
        raise SymnetAssertionError(f"no witness found that {net!r} is not affine: unproved{hint}")
    # recompute the witness independently of the search
    widths = [int(np.shape(w.input_a)[1])] + [int(np.shape(w.weights[f"b{layer.index}"])[1]) for layer in net.layers]
    concrete = Network.dense(widths, [_bind_numeric(layer.activation, w.parameters) for layer in net.layers])

    def F(v: np.ndarray) -> np.ndarray:
        return concrete.forward(v, w.weights)

    with np.errstate(all="ignore"):
        lhs = F(w.t * w.input_a + (1 - w.t) * w.input_b)
        rhs = w.t * F(w.input_a) + (1 - w.t) * F(w.input_b)
    if not np.max(np.abs(lhs - rhs)) > 1e-9:
        raise SymnetAssertionError("the witness did not hold when recomputed",
                                   f"lhs = {_value(lhs)}\nrhs = {_value(rhs)}")
    return w


def _bind_numeric(activation: Any, parameters: dict[str, float]):
    import sympy as sp

    values = {sp.Symbol(k, real=True): sp.Rational(v).limit_denominator(10**6) for k, v in parameters.items()}
    return activation.record.bind(**{k: v.xreplace(values) for k, v in activation.params})


# ---------------------------------------------------------------------------
# Gradients


def _as_arrays(point: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The point in float64 whatever its dtype: the gradients and the differences are float64."""
    from symnet.testing.gradcheck import _float64

    return {k: _float64(v) for k, v in point.items()}


class _Overflow(Exception):
    """The loss (or a gradient) is not finite at a point."""


def assert_gradients_match(
    net: Network,
    loss: Any = "sse",
    *,
    seed: int = 0,
    points: int = 3,
    batch: int = 2,
    point: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None = None,
    gradient: Callable[..., Mapping[str, Any]] | Mapping[str, Any] | None = None,
    derivative: Callable | None = None,
    prove: bool = False,
    rtol: float | None = None,
    max_entries: int | None = None,
    taylor: bool = True,
    allow_vacuous: bool | None = None,
) -> list:
    """Assert that backprop's gradients of ``loss`` for ``net`` match finite differences.

    The gradients of :func:`symnet.networks.backprop.gradients` (or the caller's own, see
    ``gradient``) are compared entry by entry with Richardson-extrapolated central
    differences of the loss, plus a Taylor-remainder order test
    (:func:`symnet.testing.gradcheck.check`).  Kinks are handled: at a point where the
    loss is not differentiable along an entry (a relu pre-activation at exactly
    0) the claimed value must lie between the one-sided derivatives.

    Args:
        net: a network (a symbolic width is checked as 3).
        loss: ``"sse"``, ``"mse"`` or ``"xent"`` (or a :class:`symnet.networks.losses.Loss`).
        seed, points, batch: check at ``points`` seeded random points
            (``seed, seed + 1, ...``) of ``batch`` examples each.
        point: check at this point (or these points) instead: arrays ``x``,
            ``t``, ``W1``, ``b1``, ... and values of symbolic activation parameters.
        gradient: the gradients to check, instead of symnet's: a function called
            as ``gradient(x=..., t=..., W1=..., ...)`` returning a dict
            ``{"W1": array, "b1": array, ...}``, or such a dict (for one point).
            The loss is always symnet's.
        derivative: passed to :func:`~symnet.networks.backprop.gradients` (a rule giving
            ``f'`` for an activation: for testing a hand-derived derivative).
        prove: also require every step of the backprop derivation to be proved
            by the kernel.
        rtol, max_entries, taylor: options of :func:`symnet.testing.gradcheck.check`.
        allow_vacuous: what to do with a *vacuous* check (``report.vacuous``: every
            gradient entry and every finite difference is zero to within the
            loss's round-off, so nothing was tested).  ``False``: fail.  ``True``:
            accept it.  ``None`` (default): at symnet's random points a vacuous
            point is replaced by a fresh seed (up to 8 tries per point) and the
            assertion fails if every try is vacuous; at the caller's own
            ``point`` it is accepted with a
            :class:`~symnet.testing.gradcheck.VacuousCheckWarning` (the report says so).

    Every point is cast to float64 before the gradients are computed and the
    loss is differenced (a float16 or float32 point is checked as tightly as a
    float64 one); tolerances do not depend on the point's dtype.

    Returns:
        The :class:`~symnet.testing.gradcheck.GradCheckReport` of every point.
    """
    __tracebackhide__ = True
    from symnet.errors import SymnetError
    from symnet.networks.backprop import gradients
    from symnet.testing.gradcheck import check

    if net.has_symbolic_widths:  # numbers need sizes: a symbolic width becomes 3
        net = Network.dense([int(w) if w.is_Integer else 3 for w in net.widths],
                            [layer.activation for layer in net.layers])
    g = gradients(net, loss, derivative=derivative)
    if point is None:
        if points < 1:
            raise SymnetError("assert_gradients_match needs at least one point")
        pts = [g.random_point(seed + k, batch=batch) for k in range(points)]
    elif isinstance(point, Mapping):
        pts = [point]
    else:
        pts = list(point)
    if isinstance(gradient, Mapping) and len(pts) != 1:
        raise SymnetError("a gradient given as a dict belongs to one point: pass point=... as well")
    needed = ["x", "t", *g.parameters, *(s.name for s in g.scalar_parameters)]
    for k, raw in enumerate(pts):
        missing = [name for name in needed if name not in raw]
        if missing:
            raise SymnetError(f"point {k} has no value for {', '.join(missing)} (it needs {', '.join(needed)})")
    loss_fn = g.loss_function()
    compiled = g.function() if gradient is None else None
    source = "backprop's gradients" if gradient is None else "the given gradients"
    def check_one(raw: Mapping[str, Any], where: str):
        p = _as_arrays(raw)
        own = {k: np.asarray(v) for k, v in raw.items()}  # check() casts; the report names this dtype
        if gradient is None:
            claimed = compiled(**p)
        elif isinstance(gradient, Mapping):
            claimed = gradient
        else:
            claimed = gradient(**{name: np.array(v) for name, v in p.items()})
        missing = [name for name in g.parameters if name not in claimed]
        if missing:
            raise SymnetAssertionError(f"{source} for {net!r} have no entry for {', '.join(missing)}",
                                       f"expected keys: {', '.join(g.parameters)}")
        grads = {name: np.asarray(claimed[name], dtype=np.float64) for name in g.parameters}
        for name, value in grads.items():
            if value.shape != p[name].shape:
                raise SymnetAssertionError(
                    f"{source} for {net!r}: d{g.loss.name}/d{name} has shape {value.shape}, "
                    f"{name} has shape {p[name].shape}")

        def loss_at(arrays: dict) -> float:
            value = float(loss_fn(**arrays)["loss"])
            if not np.isfinite(value):
                raise _Overflow(value)
            return value

        try:
            loss_at(p)
            for name, value in grads.items():
                if not np.all(np.isfinite(value)):
                    raise _Overflow(f"d{g.loss.name}/d{name} = {_value(value)}")
            report = check(loss_at, grads, own, rtol=rtol, max_entries=max_entries, taylor=taylor, seed=check_seed)
        except _Overflow as exc:  # no NaN verdicts: an overflowing point is a failure, named as such
            shown = [f"    {name} = {_value(v)}" for name, v in p.items()]
            raise SymnetAssertionError(
                f"cannot check the gradients of the {g.loss.name} loss for {net!r} at {where}: "
                f"the loss or a gradient is not finite there ({exc.args[0]})",
                "  (overflow: use smaller weights or inputs)\n  at the point\n" + "\n".join(shown),
            ) from None
        shown = [f"    {name} = {_value(v)}" for name, v in p.items()]
        if not report.ok:
            raise SymnetAssertionError(
                f"{source} of the {g.loss.name} loss for {net!r} do not match finite differences at {where}",
                str(report) + "\n  at the point\n" + "\n".join(shown),
            )
        return report, shown

    reports = []
    tries = 8 if (point is None and allow_vacuous is None) else 1  # redraws of a vacuous random point
    for k, raw in enumerate(pts):
        for attempt in range(tries):
            check_seed = seed + k + attempt * len(pts)  # distinct from the other points' seeds
            if attempt:
                raw = g.random_point(check_seed, batch=batch)
            where = f"point {k} (seed {check_seed})" if point is None else f"point {k}"
            report, shown = check_one(raw, where)
            if not report.vacuous or allow_vacuous is True or attempt + 1 < tries:
                if not report.vacuous or allow_vacuous is True:
                    break
                continue
            if allow_vacuous is False or point is None:
                tried = f" (and at {tries - 1} other seeds)" if tries > 1 else ""
                raise SymnetAssertionError(
                    f"the gradient check of {source} of the {g.loss.name} loss for {net!r} is vacuous at "
                    f"{where}{tried}: every gradient entry and every finite difference is zero, so nothing "
                    "was tested",
                    str(report) + "\n  (pass allow_vacuous=True if vanishing gradients are intended)"
                    "\n  at the point\n" + "\n".join(shown),
                )
            import warnings

            from symnet.testing.gradcheck import VacuousCheckWarning

            warnings.warn(f"the gradient check of the {g.loss.name} loss for {net!r} at {where} is vacuous: "
                          "every gradient and finite difference is zero, nothing was tested "
                          "(pass allow_vacuous=True to accept this silently, False to fail)",
                          VacuousCheckWarning, stacklevel=2)
        reports.append(report)
    if prove:
        derivation = g.derivation
        if not derivation.ok:
            raise SymnetAssertionError(
                f"the backprop derivation for {net!r} is {derivation.verdict}, not proved",
                _failing_steps(derivation),
            )
    return reports


# ---------------------------------------------------------------------------
# Derivations


def assert_proved(derivation: Any):
    """Assert that every step of a derivation is proved by the kernel.

    Accepts a :class:`~symnet.notes.derivation.Derivation` or anything with a
    ``.derivation`` (a collapse result, :class:`~symnet.networks.backprop.Gradients`).
    Returns the derivation.
    """
    __tracebackhide__ = True
    d = _derivation_of(derivation)
    if not d.steps:
        raise SymnetAssertionError(f"'{d.title}' has no steps: nothing is proved")
    if not d.ok:
        bad = sum(1 for s in d.steps if not s.ok)
        raise SymnetAssertionError(f"'{d.title}': {bad} of {len(d.steps)} steps not proved ({d.verdict})",
                                   _failing_steps(d))
    return d


_LOOKS_LIKE_A_PATH = (".deriv", ".md", ".markdown")


def _read(path_or_text: str | os.PathLike) -> tuple[str | None, str, str]:
    """``(text, path, kind)``: kind is ``file`` or ``text``; text None when the file is unreadable."""
    if isinstance(path_or_text, os.PathLike):
        path = os.fspath(path_or_text)
        return None, path, "file"
    s = str(path_or_text)
    if "\n" not in s and (s.lower().endswith(_LOOKS_LIKE_A_PATH) or Path(s).is_file()):
        return None, s, "file"
    return s, "<string>", "text"


def assert_derivation(
    path_or_text: str | os.PathLike,
    *,
    trials: int = 3,
    seed: int = 0,
    markdown: bool | None = None,
):
    """Assert that a derivation file (or its text) checks fully: well formed, every step proved.

    Args:
        path_or_text: a ``.deriv`` or Markdown file (a path, or a string without
            newlines naming a file), or the text of a derivation.
        trials, seed: random instances of the numeric second opinion.
        markdown: read the text as Markdown (its ``symnet`` blocks); default: by
            the file's suffix, and ``False`` for text.

    Returns:
        The :class:`~symnet.notes.checkfile.FileResult`.

    The failure message is the report ``symnet check`` prints: ``FILE:LINE:``,
    the verdict and the kernel's reason, the source line with a marker under
    the step, and the counterexample.
    """
    __tracebackhide__ = True
    from symnet.notes.checkfile import check_file, check_text, file_text

    text, path, kind = _read(path_or_text)
    if kind == "file":
        if not Path(path).exists():
            raise SymnetAssertionError(f"{path}: no such derivation file")
        if not Path(path).is_file():
            raise SymnetAssertionError(f"{path}: not a regular file")
        if markdown is None:
            result = check_file(path, trials=trials, seed=seed)
        else:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SymnetAssertionError(f"{path}: cannot read: {exc}") from None
            result = check_text(text, path, markdown=markdown, trials=trials, seed=seed)
    else:
        result = check_text(text, path, markdown=bool(markdown), trials=trials, seed=seed)
    if result.ok and result.steps:
        return result
    lines = file_text(result)
    if not result.malformed and not result.steps:
        raise SymnetAssertionError(f"{path}: no steps to check: nothing is proved", report="\n".join(lines))
    raise SymnetAssertionError(lines[0], report="\n".join(lines))
