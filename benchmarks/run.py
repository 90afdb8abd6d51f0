"""symnet's performance targets, each measured as a ratio against a baseline in the same run.

    python benchmarks/run.py [--json benchmarks/results.json] [--quick]

Prints a table and writes JSON.  Times are the best of several repeats
(``time.perf_counter``); command-line latency is the median of repeated runs
of a fresh process.  The test suite never asserts timings: this script is
where speed is shown.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def best_of(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` runs, SymPy's cache cleared before each
    (otherwise a repeated SymPy computation is a cache lookup)."""
    from sympy.core.cache import clear_cache

    times = []
    for _ in range(repeats):
        clear_cache()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def row(target: str, measured: str, ratio: float, goal: str, ok: bool) -> dict:
    return {"target": target, "measured": measured, "ratio": round(ratio, 2), "goal": goal, "ok": ok}


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
    n64, n128 = Network.dense([8] * 65), Network.dense([8] * 129)
    t64 = best_of(lambda: collapse(n64), 3)
    t128 = best_of(lambda: collapse(n128), 3)
    result = collapse(n64)
    assert result.derivation.verdict == "proved"
    return [
        row("1a collapse depth 64 width 8 (built+checked) vs SymPy expand() of the nested expression",
            f"symnet {t64 * 1e3:.0f} ms, expand {t_expand * 1e3:.0f} ms", t_expand / t64, ">= 20x", t_expand / t64 >= 20),
        row("1b collapse depth 128 / depth 64", f"{t128 * 1e3:.0f} ms / {t64 * 1e3:.0f} ms", t128 / t64,
            "<= 4.5x", t128 / t64 <= 4.5),
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
    import numpy as np
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
    n16, n64 = Network.dense([4] * 17, "tanh"), Network.dense([4] * 65, "tanh")
    t16 = best_of(lambda: derive_and_compile(n16), 2)
    t64 = best_of(lambda: derive_and_compile(n64), 1 if quick else 2)
    def derive_check_compile(net):
        g = derive_and_compile(net)
        assert g.derivation.verdict == "proved"  # every chain-rule step decided by the kernel
        return g

    t_checked = best_of(lambda: derive_check_compile(small), 3)
    rows = [
        row("3a derive+compile all gradients width 4 depth 4 tanh vs SymPy entrywise diff + cse",
            f"symnet {t_ours * 1e3:.0f} ms, SymPy {t_sympy:.1f} s", t_sympy / t_ours, ">= 100x", t_sympy / t_ours >= 100),
        row("3a' the same with every derivation step checked by the kernel",
            f"symnet {t_checked * 1e3:.0f} ms, SymPy {t_sympy:.1f} s", t_sympy / t_checked, ">= 100x",
            t_sympy / t_checked >= 100),
        row("3b gradients depth 64 / depth 16", f"{t64 * 1e3:.0f} ms / {t16 * 1e3:.0f} ms", t64 / t16, "<= 5x",
            t64 / t16 <= 5),
    ]

    # 4: compiled gradients vs a hand-written NumPy backprop
    width, depth, batch = 128, 4, 2048
    net = Network.dense([width] * (depth + 1), "tanh")
    f = gradients(net, loss="sse").function()
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((batch, width)), "t": rng.standard_normal((batch, width))}
    for layer in net.layers:
        arrays[layer.W.name] = rng.standard_normal((width, width)) / np.sqrt(width)
        arrays[layer.b.name] = rng.standard_normal((1, width))

    def by_hand():
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

    ours, ref = f(**arrays), by_hand()
    grads = ours.get("gradients", ours)
    err = max(float(np.max(np.abs(np.asarray(grads[k]) - ref[k]))) for k in ref)
    t_hand = best_of(by_hand, 5 if quick else 10)
    t_comp = best_of(lambda: f(**arrays), 5 if quick else 10)
    rows.append(row("4 compiled gradients width 128 depth 4 batch 2048 vs hand-written NumPy",
                    f"symnet {t_comp * 1e3:.1f} ms, by hand {t_hand * 1e3:.1f} ms (max diff {err:.1e})",
                    t_comp / t_hand, "<= 1.3x", t_comp / t_hand <= 1.3))
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        params = {k: torch.tensor(v, requires_grad=k not in ("x", "t")) for k, v in arrays.items()}

        def autograd():
            h = params["x"]
            for l in range(1, depth + 1):
                h = torch.tanh(h @ params[f"W{l}"] + params[f"b{l}"])
            loss = 0.5 * ((h - params["t"]) ** 2).sum()
            return torch.autograd.grad(loss, [params[k] for k in params if k not in ("x", "t")])

        t_torch = best_of(autograd, 5)
        rows.append(row("4' PyTorch CPU autograd (for reference)", f"{t_torch * 1e3:.1f} ms", t_torch / t_hand, "-", True))
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
            rows.append(row("5b whole proofs/ library checked", f"{t:.2f} s", t / 5.0, "< 5 s", t < 5.0))
        except subprocess.CalledProcessError as exc:
            rows.append(row("5b whole proofs/ library checked", f"failed (exit {exc.returncode})", 0.0, "< 5 s", False))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", choices=("1", "2", "3", "5"), action="append")
    args = parser.parse_args()
    sections = {"1": collapse_scaling, "2": entrywise, "3": gradient_targets, "5": latency}
    rows = []
    for key, fn in sections.items():
        if args.only and key not in args.only:
            continue
        rows += fn(args.quick)
    width = max(len(r["target"]) for r in rows)
    print(f"{'target'.ljust(width)}  {'ratio':>8}  goal      ok   measured")
    for r in rows:
        print(f"{r['target'].ljust(width)}  {r['ratio']:>8}  {r['goal']:<8}  {'yes' if r['ok'] else 'NO ':<3}  {r['measured']}")
    meta = {"python": sys.version.split()[0], "machine": platform.machine(), "processor": platform.processor()}
    Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
