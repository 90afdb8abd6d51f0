"""symnet's performance targets, each measured as a ratio against a baseline in the same run.

    python benchmarks/run.py [--out PATH] [--quick] [--repeats N] [--load quiet|busy|both] [--only K]

Prints a table; writes JSON only to the path given with ``--out`` (the committed
``benchmarks/results.json`` is rewritten only when named).  Every timed row is
repeated after one untimed warm-up, the candidates of a comparison interleaved
(a, b, a, b, ...; SymPy's cache cleared and glibc's free memory handed back before
each, so no candidate pays for the memory the one before it freed), and reported as
the median with its spread (min-max); a ratio is the ratio of medians.
Command-line latency is the median of repeated runs of a fresh process.
``--load busy`` runs everything beside a busy loop loading one core, ``both`` runs
quiet then busy and reports both.
PyTorch, JAX and SymEngine rows appear when those are installed and say
"skipped" when not.  The test suite never asserts timings: this script is where
speed is shown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


REPEATS = 5  # set from --repeats


def _settle() -> None:
    """Start a timed run from the same heap whoever ran before: hand glibc's free lists
    back (``malloc_trim``), outside the timer.  Without it the first allocation after a
    candidate that freed much memory pays for consolidating it (we measured 70 ms landing
    on one dict resize right after SymEngine's products)."""
    if _TRIM is not None:
        _TRIM(0)


def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to hand back
        return None


_TRIM = _malloc_trim()


def interleaved(candidates: dict, repeats: int | None = None) -> dict[str, list[float]]:
    """Wall times of each candidate, run in turn ``repeats`` times (a, b, a, b, ...) after
    one untimed warm-up each, SymPy's cache cleared and the heap settled (:func:`_settle`)
    before every run (otherwise a repeated SymPy computation is a cache lookup)."""
    from sympy.core.cache import clear_cache

    repeats = REPEATS if repeats is None else repeats
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():
        fn()
    for _ in range(repeats):
        for name, fn in candidates.items():
            clear_cache()
            _settle()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def median(ts: list[float]) -> float:
    return statistics.median(ts)


def spread(ts: list[float], unit: float = 1e3) -> str:
    """``median [min-max]`` in ms (``unit`` 1e3) or s (1)."""
    fmt = (lambda v: f"{v * unit:.1f}") if unit == 1e3 else (lambda v: f"{v:.2f}")
    return f"{fmt(median(ts))} [{fmt(min(ts))}-{fmt(max(ts))}]"


def best_of(fn, repeats: int = 3) -> float:
    """The median wall time of ``repeats`` runs (name kept for the older rows)."""
    return median(interleaved({"fn": fn}, repeats)["fn"])


def row(target: str, measured: str, ratio: float, goal: str, ok: bool, **extra) -> dict:
    return {"target": target, "measured": measured, "ratio": round(ratio, 2), "goal": goal, "ok": ok, **extra}


# --------------------------------------------------------------------------- 1


def collapse_scaling(quick: bool) -> list[dict]:
    import sympy as sp

    from symnet import Network, collapse

    def nested(depth: int, width: int):
        x = sp.MatrixSymbol("x", 1, width)
        h = x
        for l in range(1, depth + 1):
            W = sp.MatrixSymbol(f"W{l}", width, width)
            b = sp.MatrixSymbol(f"b{l}", 1, width)
            h = sp.MatAdd(sp.MatMul(h, W, evaluate=False), b, evaluate=False)
        return h

    collapse(Network.dense([2, 2]))  # warm caches shared by both sides
    e64 = nested(64, 8)
    t_expand = best_of(lambda: sp.expand(e64), 1 if quick else 2)
    n64, n128, n512 = Network.dense([8] * 65), Network.dense([8] * 129), Network.dense([8] * 513)

    def checked(net):
        result = collapse(net)
        assert result.derivation.verdict == "proved"  # every step decided by the kernel
        return result

    t64 = best_of(lambda: checked(n64), 3)
    t128 = best_of(lambda: checked(n128), 3)
    t512 = best_of(lambda: checked(n512), 1 if quick else 3)
    return [
        row("1a collapse depth 64 width 8 (built+checked) vs SymPy expand() of the nested expression",
            f"symnet {t64 * 1e3:.0f} ms, expand {t_expand * 1e3:.0f} ms", t_expand / t64, ">= 20x", t_expand / t64 >= 20),
        row("1b collapse depth 128 / depth 64", f"{t128 * 1e3:.0f} ms / {t64 * 1e3:.0f} ms", t128 / t64,
            "<= 4.5x", t128 / t64 <= 4.5),
        row("1c collapse with named intermediates, checked, depth 512 / depth 64",
            f"{t512 * 1e3:.0f} ms / {t64 * 1e3:.0f} ms", t512 / t64, "<= 10x", t512 / t64 <= 10),
    ]


# --------------------------------------------------------------------------- 2


def entrywise(quick: bool) -> list[dict]:
    import sympy as sp

    from symnet import Network
    from symnet.networks.explicit import collapse_entries

    width, depth = 3, 5

    def sympy_baseline():
        Ws = [sp.Matrix(width, width, lambda i, j, l=l: sp.Symbol(f"w{l}_{i}_{j}")) for l in range(depth)]
        bs = [sp.Matrix(1, width, lambda i, j, l=l: sp.Symbol(f"b{l}_{j}")) for l in range(depth)]
        W, b = Ws[0], bs[0]
        for Wl, bl in zip(Ws[1:], bs[1:]):
            W = (W * Wl).expand()
            b = (b * Wl + bl).expand()
        return W, b

    net = Network.dense([width] * (depth + 1))
    collapse_entries(net)
    t_sympy = best_of(sympy_baseline, 2 if quick else 3)
    t_ours = best_of(lambda: collapse_entries(net), 5)
    return [row("2 entrywise collapse width 3 depth 5 vs SymPy Matrix products + expand",
                f"symnet {t_ours * 1e3:.1f} ms, SymPy {t_sympy * 1e3:.0f} ms", t_sympy / t_ours, ">= 50x",
                t_sympy / t_ours >= 50)]


# --------------------------------------------------------------------------- 3, 4


def gradient_targets(quick: bool) -> list[dict]:
    try:
        from symnet.networks.backprop import gradients
    except ImportError:
        return [row("3/4 gradients", "symnet.networks.backprop not available", 0.0, "-", False)]
    import sympy as sp

    from symnet import Network

    def derive_and_compile(net):
        g = gradients(net, loss="sse")
        g.function()
        return g

    def sympy_entrywise(width: int, depth: int):
        xs = sp.Matrix(1, width, lambda i, j: sp.Symbol(f"x{j}"))
        ts = sp.Matrix(1, width, lambda i, j: sp.Symbol(f"t{j}"))
        params, h = [], xs
        for l in range(depth):
            W = sp.Matrix(width, width, lambda i, j, l=l: sp.Symbol(f"w{l}_{i}_{j}"))
            b = sp.Matrix(1, width, lambda i, j, l=l: sp.Symbol(f"b{l}_{j}"))
            params += list(W) + list(b)
            h = (h * W + b).applyfunc(sp.tanh)
        loss = sum((h[j] - ts[j]) ** 2 for j in range(width)) / 2
        grads = [sp.diff(loss, p) for p in params]
        return sp.cse(grads)

    small = Network.dense([4] * 5, "tanh")
    derive_and_compile(Network.dense([2, 2], "tanh"))
    t_ours = best_of(lambda: derive_and_compile(small), 3)
    t_sympy = best_of(lambda: sympy_entrywise(4, 4), 1)
    def derive_check_compile(net):
        g = derive_and_compile(net)
        assert g.derivation.verdict == "proved"  # every chain-rule step decided by the kernel
        return g

    n16, n64 = Network.dense([4] * 17, "tanh"), Network.dense([4] * 65, "tanh")
    depths = interleaved({"16": lambda: derive_check_compile(n16), "64": lambda: derive_check_compile(n64)},
                         1 if quick else None)
    t16, t64 = median(depths["16"]), median(depths["64"])

    t_checked = best_of(lambda: derive_check_compile(small), 3)
    rows = [
        row("3a derive+compile all gradients width 4 depth 4 tanh vs SymPy entrywise diff + cse",
            f"symnet {t_ours * 1e3:.0f} ms, SymPy {t_sympy:.1f} s", t_sympy / t_ours, ">= 100x", t_sympy / t_ours >= 100),
        row("3a' the same with every derivation step checked by the kernel",
            f"symnet {t_checked * 1e3:.0f} ms, SymPy {t_sympy:.1f} s", t_sympy / t_checked, ">= 100x",
            t_sympy / t_checked >= 100),
        row("3b checked gradient derivation (every step proved) depth 64 / depth 16",
            f"{spread(depths['64'])} ms / {spread(depths['16'])} ms", t64 / t16, "<= 5x",
            t64 / t16 <= 5),
    ]

    return rows


# --------------------------------------------------------------------------- 4


def _matmul_peak(np, batch: int, width: int, dtype) -> float:
    """This machine's NumPy matmul rate (FLOP/s) on the gradient's own product shapes,
    ``(batch, w) @ (w, w)`` (the forward pass and delta W^T) and ``(w, batch) @ (batch, w)``
    (each weight's gradient, a long inner dimension, faster): the best of 21 runs of each
    (a peak; the median under a busy loop, or one shape alone, put it below what the
    gradients themselves reached)."""
    a, w = np.ones((batch, width), dtype), np.ones((width, width), dtype)
    times = interleaved({"mm": lambda: a @ w, "mt": lambda: a.T @ a}, 21)
    return 2 * batch * width * width / min(min(times["mm"]), min(times["mt"]))


def _arrays(np, width: int, depth: int, batch: int = 2048) -> dict:
    """The benchmark's seeded point: x, t standard normal, W_l / sqrt(width), b_l standard normal."""
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((batch, width)), "t": rng.standard_normal((batch, width))}
    for l in range(1, depth + 1):
        arrays[f"W{l}"] = rng.standard_normal((width, width)) / np.sqrt(width)
        arrays[f"b{l}"] = rng.standard_normal((1, width))
    return arrays


def jax_worker(width: int, depth: int, dtype: str) -> None:
    """``--jax-worker``: JAX's jit-compiled gradient, timed once per line read from stdin."""
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    arrays = {k: jnp.asarray(v.astype(dtype)) for k, v in _arrays(np, width, depth).items()}
    x, t = arrays.pop("x"), arrays.pop("t")

    def loss(p, x, t):
        h = x
        for l in range(1, depth + 1):
            h = jnp.tanh(h @ p[f"W{l}"] + p[f"b{l}"])
        return 0.5 * jnp.sum((h - t) ** 2)

    grad = jax.jit(jax.grad(loss))
    jax.block_until_ready(grad(arrays, x, t))  # compile
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        jax.block_until_ready(grad(arrays, x, t))
        print(time.perf_counter() - start, flush=True)


class JaxWorker:
    """A process running :func:`jax_worker`; ``run()`` times one call there (the pipe's
    round trip is not counted: the worker measures)."""

    def __init__(self, width: int, depth: int, dtype: str):
        self.proc = subprocess.Popen([sys.executable, __file__, "--jax-worker", str(width), str(depth), dtype],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.seconds: list[float] = []

    def run(self) -> None:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        self.seconds.append(float(self.proc.stdout.readline()))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compiled_gradients(quick: bool) -> list[dict]:
    """4: compiled gradients against hand-written NumPy, PyTorch CPU autograd and JAX jit."""
    import numpy as np

    from symnet import Network
    from symnet.networks.backprop import gradients

    try:
        import torch
    except ImportError:
        torch = None
    import importlib.util

    has_jax = importlib.util.find_spec("jax") is not None
    rows = []
    for width, depth in [(128, 4), (512, 16)]:
        net = Network.dense([width] * (depth + 1), "tanh")
        f = gradients(net, loss="sse").function()
        batch = 2048
        base = _arrays(np, width, depth, batch)
        names = [k for k in base if k not in ("x", "t")]
        for dtype in (np.float64, np.float32):
            arrays = {k: v.astype(dtype) for k, v in base.items()}

            def by_hand(arrays=arrays, depth=depth):
                hs, h = [arrays["x"]], arrays["x"]
                for l in range(1, depth + 1):
                    h = np.tanh(h @ arrays[f"W{l}"] + arrays[f"b{l}"])
                    hs.append(h)
                delta = (h - arrays["t"]) * (1 - h * h)
                out = {}
                for l in range(depth, 0, -1):
                    out[f"W{l}"] = hs[l - 1].T @ delta
                    out[f"b{l}"] = delta.sum(axis=0, keepdims=True)
                    if l > 1:
                        delta = (delta @ arrays[f"W{l}"].T) * (1 - hs[l - 1] ** 2)
                return out

            candidates = {"symnet": lambda arrays=arrays, f=f: f(**arrays), "hand NumPy": by_hand}
            ours, ref = f(**arrays), by_hand()
            err = max(float(np.max(np.abs(ours[k] - ref[k]) / (np.max(np.abs(ref[k])) + 1e-30))) for k in names)
            if torch is not None:
                params = {k: torch.tensor(v, requires_grad=k not in ("x", "t")) for k, v in arrays.items()}

                def autograd(params=params, depth=depth, names=names):
                    h = params["x"]
                    for l in range(1, depth + 1):
                        h = torch.tanh(h @ params[f"W{l}"] + params[f"b{l}"])
                    loss = 0.5 * ((h - params["t"]) ** 2).sum()
                    return torch.autograd.grad(loss, [params[k] for k in names])

                candidates["PyTorch"] = autograd
            jax_worker = None
            if has_jax:  # in its own process: XLA's threads beside OpenBLAS's slow both down many times
                jax_worker = JaxWorker(width, depth, np.dtype(dtype).name)
                candidates["JAX"] = jax_worker.run
            repeats = 3 if quick else (7 if width == 512 else 21)
            for fn in candidates.values():
                fn()  # warm-up (JAX compiles here)
            try:
                times = interleaved(candidates, repeats)
            finally:
                if jax_worker is not None:
                    jax_worker.close()
            if jax_worker is not None:
                times["JAX"] = jax_worker.seconds[1:]  # as the worker timed them, warm-up dropped
            peak = _matmul_peak(np, batch, width, dtype)
            bound = (3 * depth - 1) * 2 * batch * width * width / peak
            med = {k: median(v) for k, v in times.items()}
            eff = {k: bound / v for k, v in med.items()}
            label = f"4 compiled gradients width {width} depth {depth} batch {batch} {np.dtype(dtype).name}"
            measured = ", ".join(f"{k} {spread(v)} ms ({100 * eff[k]:.0f}% of peak)" for k, v in times.items())
            extra = {"median_ms": {k: round(v * 1e3, 3) for k, v in med.items()},
                     "spread_ms": {k: [round(min(v) * 1e3, 3), round(max(v) * 1e3, 3)] for k, v in times.items()},
                     "flop_bound_ms": round(bound * 1e3, 3), "matmul_peak_gflops": round(peak / 1e9, 1),
                     "efficiency": {k: round(v, 3) for k, v in eff.items()}, "max_rel_diff_vs_hand": err}
            if "PyTorch" in med:
                ratio = med["symnet"] / med["PyTorch"]
                rows.append(row(label + " vs PyTorch CPU autograd", measured + f"; FLOP bound {bound * 1e3:.1f} ms",
                                ratio, "<= 1x", ratio <= 1.0, **extra))
            else:
                ratio = med["symnet"] / med["hand NumPy"]
                rows.append(row(label + " vs hand NumPy (PyTorch skipped: not installed)", measured, ratio,
                                "<= 1.3x", ratio <= 1.3, **extra))
            if not has_jax:
                rows[-1]["notes"] = "JAX skipped: not installed"
    return rows


def entrywise_vs_symengine(quick: bool) -> list[dict]:
    """2b: the entrywise collapse (with its exact and numeric checks) against SymEngine's products."""
    try:
        import symengine as se
    except ImportError:
        return [row("2b entrywise collapse vs SymEngine", "skipped: symengine not installed", 0.0, ">= 2x", True)]
    from symnet import Network
    from symnet.networks import explicit

    def symengine_products(width: int, depth: int):
        Ws = [se.Matrix(width, width, [se.Symbol(f"w{l}_{i}_{j}") for i in range(width) for j in range(width)])
              for l in range(depth)]
        bs = [se.Matrix(1, width, [se.Symbol(f"b{l}_{j}") for j in range(width)]) for l in range(depth)]
        W, b = Ws[0], bs[0]
        for Wl, bl in zip(Ws[1:], bs[1:]):
            W = (W * Wl).expand()
            b = (b * Wl + bl).expand()
        return W, b

    backend = "flint" if explicit.flint is not None else "python"
    rows = []
    for width, depth in [(3, 5), (3, 10), (5, 6), (7, 5)]:
        net = Network.dense([width] * (depth + 1))
        assert explicit.collapse_entries(net).ok
        times = interleaved({"symnet": lambda net=net: explicit.collapse_entries(net),
                             "SymEngine": lambda w=width, d=depth: symengine_products(w, d)},
                            3 if quick else (7 if depth < 10 else 5))
        ratio = median(times["SymEngine"]) / median(times["symnet"])
        rows.append(row(f"2b entrywise collapse width {width} depth {depth} ({backend}, checked) vs SymEngine",
                        f"symnet {spread(times['symnet'])} ms, SymEngine {spread(times['SymEngine'])} ms",
                        ratio, ">= 2x", ratio >= 2,
                        median_ms={k: round(median(v) * 1e3, 3) for k, v in times.items()}))
    return rows


# --------------------------------------------------------------------------- 5


def latency(quick: bool) -> list[dict]:
    def median_run(cmd: list[str], n: int) -> float:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    n = 5 if quick else 11
    base = median_run([sys.executable, "-c", "import sympy, numpy"], n)
    ours = median_run([sys.executable, "-m", "symnet.cli", "collapse", "--layers", "3,4,4,2"], n)
    rows = [row("5a `symnet collapse --layers 3,4,4,2` vs `python -c 'import sympy, numpy'`",
                f"symnet {ours * 1e3:.0f} ms, imports {base * 1e3:.0f} ms", ours / base, "<= 1.6x", ours / base <= 1.6)]
    if (ROOT / "proofs").is_dir() and any((ROOT / "proofs").iterdir()):
        try:
            t = median_run([sys.executable, "-m", "symnet.cli", "proofs", "check", "proofs"], 1 if quick else 3)
            rows.append(row("5b whole proofs/ library checked", f"{t:.2f} s", t / 4.0, "< 4 s", t < 4.0))
        except subprocess.CalledProcessError as exc:
            rows.append(row("5b whole proofs/ library checked", f"failed (exit {exc.returncode})", 0.0, "< 4 s", False))
    return rows


SECTIONS = {"1": lambda q: collapse_scaling(q), "2": lambda q: entrywise(q) + entrywise_vs_symengine(q),
            "3": lambda q: gradient_targets(q), "4": lambda q: compiled_gradients(q), "5": lambda q: latency(q)}


def run_sections(only: list[str] | None, quick: bool) -> list[dict]:
    rows = []
    for key, fn in SECTIONS.items():
        if not only or key in only:
            rows += fn(quick)
    return rows


def busy_loop() -> subprocess.Popen:
    """Another process keeping one core busy (what a shared machine looks like)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    width = max(len(r["target"]) for r in rows)
    print(f"{'target'.ljust(width)}  {'ratio':>8}  goal      ok   measured")
    for r in rows:
        ok = "yes" if r["ok"] else "NO "
        print(f"{r['target'].ljust(width)}  {r['ratio']:>8}  {r['goal']:<8}  {ok:<3}  {r['measured']}")


def main() -> int:
    global REPEATS
    if sys.argv[1:2] == ["--jax-worker"]:
        jax_worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", "--json", dest="out", help="write the results as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each row (default 5)")
    parser.add_argument("--load", choices=("quiet", "busy", "both"), default="quiet",
                        help="run beside a busy loop loading one core (busy), or quiet then busy (both)")
    parser.add_argument("--only", choices=tuple(SECTIONS), action="append")
    args = parser.parse_args()
    REPEATS = args.repeats
    results: dict[str, list[dict]] = {}
    for load in (["quiet", "busy"] if args.load == "both" else [args.load]):
        loop = busy_loop() if load == "busy" else None
        try:
            rows = run_sections(args.only, args.quick)
        finally:
            if loop is not None:
                loop.kill()
                loop.wait()
        results[load] = rows
        print_table(rows, f"{load}: {'beside a busy loop on one core' if load == 'busy' else 'no extra load'}"
                          f" (load average before: {os.getloadavg()[0]:.2f})")
    meta = {"python": sys.version.split()[0], "machine": platform.machine(), "processor": platform.processor(),
            "cores": os.cpu_count(), "repeats": args.repeats, "load": args.load,
            "loadavg_end": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M")}
    for name in ("numpy", "sympy", "torch", "jax", "symengine", "flint"):
        try:
            meta[name] = __import__(name).__version__
        except ImportError:
            meta[name] = "not installed"
    first = next(iter(results))
    payload = {"meta": meta, "results": results[first]}
    if "busy" in results and first != "busy":
        payload["results_busy"] = results["busy"]
    if args.out:
        Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0 if all(r["ok"] for rows in results.values() for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
