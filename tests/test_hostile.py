"""Hostile and bad input: rejected cleanly, within seconds, with nothing executed.

Through the command line (``symnet check``, ``symnet collapse``) in a
subprocess with a timeout: code-execution attempts, deep nesting, absurd
sizes and binary garbage end with exit 2, one line on stderr naming the
place, no traceback, and no marker file created.  In-process: resource
limits (exponents, shapes, expansions), the per-step time budget, and
numeric overflow (``exp`` of large arguments) without NaN verdicts.

Known defects are kept as strict xfails (each names the minimal example).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from symnet.cli import main
from symnet.notes.checkfile import check_text

# A hang guard, not a speed test: each case finishes in about a second here, but time is
# measured by the benchmark and never asserted (a loaded CI machine can be many times slower).
TIMEOUT = 180


def symnet(*args: str, cwd: Path, timeout: float = TIMEOUT) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "symnet.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - start


def assert_rejected(proc: subprocess.CompletedProcess, seconds: float, where: str | None = None) -> str:
    """Exit 2, exactly one line on stderr (naming ``where``), no traceback (and no hang: the
    subprocess has a timeout)."""
    __tracebackhide__ = True
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err[-2000:])
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("symnet: error: ")
    if where is not None:
        assert where in err, err
    return err


# ---------------------------------------------------------------------------
# Code-execution attempts: nothing runs


def _payloads(marker: Path) -> dict[str, str]:
    touch = f"__import__('os').system('touch {marker}')"
    return {
        "import_call": f"matrix A: 2x2\n  A\n= {touch}\n",
        "eval_string": f"matrix A: 2x2\n  A\n= eval(\"{touch}\")\n",
        "exec_name": "matrix A: 2x2\n  A\n= exec(A)\n",
        "dunder_walk": "matrix A: 2x2\n  A.__class__.__mro__\n= A\n",
        "subclasses": "scalar z\n  z\n= ().__class__.__bases__[0].__subclasses__()\n",
        "fstring": f"scalar z\n  z\n= f'{{{touch}}}'\n",
        "lambda": "scalar z\n  z\n= (lambda: __import__('os'))()\n",
        "walrus": "scalar z\n  (q := z)\n= z\n",
        "comprehension": f"scalar z\n  z\n= [{touch} for _ in (1,)]\n",
        "define_payload": f"matrix A: 2x2\ndefine B = {touch}\n  A\n= A\n",
        "shape_payload": f"matrix A: {touch} x 2\n  A\n= A\n",
        "python_file": f"import os\nos.system('touch {marker}')\n",
        "builtins": "scalar z\n  __builtins__\n= z\n",
        "open_call": f"scalar z\n  open('{marker}', 'w')\n= z\n",
        "keyword_args": "matrix A: 2x2\n  tanh(A, __import__=1)\n= A\n",
        "decorator_like": "@tanh\nscalar z\n",
    }


def test_code_execution_attempts_are_rejected_and_nothing_runs(tmp_path):
    marker = tmp_path / "PWNED"
    payloads = _payloads(marker)
    for name, text in payloads.items():
        (tmp_path / f"{name}.deriv").write_text(text)
    (tmp_path / "notes.md").write_text(f"# notes\n\n```symnet\nscalar z\n  z\n= {payloads['import_call'].split('= ')[1]}```\n")
    files = sorted(p.name for p in tmp_path.iterdir())
    # one run for all of them (in two processes), then the stderr lines per file
    proc, seconds = symnet("check", "-j", "2", *files, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(files), errors
    for name, line in zip(files, errors):
        assert line.startswith(f"symnet: error: {name}:"), line
        if name != "python_file.deriv":  # its first line is a bad declaration-less expression
            assert any(word in line for word in ("not allowed", "unknown", "only named functions", "strings",
                                                 "syntax error", "not a shape", "reserved")), line
    assert not marker.exists()


@pytest.mark.parametrize("name", ["import_call", "fstring", "shape_payload", "open_call"])
def test_one_code_execution_attempt_per_process(tmp_path, name):
    marker = tmp_path / "PWNED"
    (tmp_path / "x.deriv").write_text(_payloads(marker)[name])
    proc, seconds = symnet("check", "x.deriv", cwd=tmp_path)
    assert_rejected(proc, seconds, "x.deriv:")
    assert not marker.exists()


def test_activation_specs_and_layer_lists_never_execute(tmp_path):
    marker = tmp_path / "PWNED"
    touch = f"__import__('os').system('touch {marker}')"
    for args in (["--layers", "2,2", "--activation", touch],
                 ["--layers", f"2,{touch}"],
                 ["--layers", "2,2,2", "--activations", f"tanh,affine(a={touch})"],
                 ["--layers", "2,2", "--activation", "affine(a=1/0)"],
                 ["--layers", "2,2", "--activation", "tanh(" * 80]):
        proc, seconds = symnet("collapse", *args, cwd=tmp_path)
        assert_rejected(proc, seconds)
    assert not marker.exists()


# ---------------------------------------------------------------------------
# Deep nesting, absurd sizes, garbage: one-line errors with a place

HOSTILE = {
    "paren_10000": ("scalar z\n  " + "(" * 10000 + "z" + ")" * 10000 + "\n= z\n", "line longer than"),
    "paren_900": ("scalar z\n  " + "(" * 900 + "z" + ")" * 900 + "\n= z\n", "nested deeper than"),
    "calls_600": ("scalar z\n  " + "tanh(" * 300 + "z" + ")" * 300 + "\n= z\n", "nested deeper than"),
    "minus_1900": ("scalar z\n  " + "-" * 1900 + "z\n= z\n", "nested deeper than"),
    "power_tower": ("scalar z\n  z" + "**z" * 600 + "\n= z\n", "nested deeper than"),
    "transposes": ("matrix A: 2x2\n  A" + ".T" * 900 + "\n= A\n", "nested deeper than"),
    "many_terms": ("scalar z\n  " + "+".join(["z"] * 1500) + "\n= z\n", "longer than"),
    "dim_1e9": ("matrix A: 1000000000 x 1000000000\n  A\n= A\n", "dimension"),
    "ones_1e7": ("matrix A: 2x2\n  ones(10000000, 1)\n= ones(10000000, 1)\n", "dimension"),
    "matpow": ("matrix A: 2x2\n  A**100000\n= A\n", "exceeds the limit"),
    "scalar_pow": ("scalar z\n  z**(10**100)\n= z\n", "exceeds the limit"),
    "tower_number": ("scalar z\n  9**9**9\n= z\n", "exceeds the limit"),
    "big_literal": ("scalar z\n  " + "9" * 1500 + "\n= z\n", "digits"),
    "big_exponent_literal": ("scalar z\n  1e999999\n= z\n", "power of ten"),
    "expansion": ("scalar a, b, c, d\n  (a + b + c + d)**64\n= a\n", "expands to more than"),
    "negative_power": ("matrix A: 2x2\n  A**-1\n= A\n", "declared invertible"),
    "zero_division": ("scalar z\n  z/0\n= z\n", "division by zero"),
    "complex": ("scalar z\n  z + 1j\n= z\n", "complex"),
}


def test_a_swelling_derivative_is_decided_fast_and_never_proved(tmp_path):
    # terms keep diff(...) as written; the kernel differentiates under a size budget
    swell = "diff(exp(z)**64*tanh(z)**64*sigmoid(z)**64, z, 8)"
    (tmp_path / "x.deriv").write_text(f"scalar z\n  {swell}\n= z\n\n  {swell}\n= {swell} + 1\n")
    proc, seconds = symnet("check", "x.deriv", cwd=tmp_path)
    assert proc.returncode == 1
    assert "proved" not in proc.stdout.replace("unproved", "").replace("not proved", "")


def test_hostile_files_are_refused_with_a_located_one_line_error(tmp_path):
    for name, (text, _) in HOSTILE.items():
        (tmp_path / f"{name}.deriv").write_text(text)
    (tmp_path / "random.deriv").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (tmp_path / "nul.deriv").write_bytes(b"matrix A: 2x2\n\x00A\n= A\n")
    (tmp_path / "utf16.deriv").write_bytes("scalar z\n  z\n= z\n".encode("utf-16"))
    (tmp_path / "overlong.deriv").write_bytes(b"scalar z\n  z\xc0\xaf\n= z\n")
    (tmp_path / "surrogate.deriv").write_bytes(b"scalar z\n  z\xed\xa0\x80\n= z\n")
    (tmp_path / "bidi.deriv").write_text("scalar z\n  z\u202e\n= z\n")
    (tmp_path / "huge.deriv").write_bytes(b"# " + b"x" * (9 * 1024 * 1024))
    (tmp_path / "a_directory.deriv").mkdir()
    files = sorted(p.name for p in tmp_path.iterdir())
    proc, seconds = symnet("check", *files, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(files), errors
    for name, line in zip(files, errors):
        assert line.startswith(f"symnet: error: {name}"), line
        stem = name.removesuffix(".deriv")
        if stem in HOSTILE:
            assert line.startswith(f"symnet: error: {name}:2:") or line.startswith(f"symnet: error: {name}:1:"), line
            assert HOSTILE[stem][1] in line, line


@pytest.mark.parametrize("name", ["paren_10000", "dim_1e9", "power_tower", "expansion"])
def test_one_hostile_file_per_process(tmp_path, name):
    (tmp_path / "x.deriv").write_text(HOSTILE[name][0])
    proc, seconds = symnet("check", "x.deriv", cwd=tmp_path)
    err = assert_rejected(proc, seconds)
    assert err.startswith("symnet: error: x.deriv:") and HOSTILE[name][1] in err


def test_binary_garbage_in_one_process(tmp_path):
    (tmp_path / "x.deriv").write_bytes(bytes(range(256)) * 20)
    proc, seconds = symnet("check", "x.deriv", cwd=tmp_path)
    assert "not UTF-8 text" in assert_rejected(proc, seconds, "x.deriv:")


def test_the_largest_allowed_shapes_are_checked_symbolically_and_stay_unproved(tmp_path):
    (tmp_path / "x.deriv").write_text("matrix A: 1000000 x 1000000\n  A*A\n= A*A\n\n  A*A\n= A*A.T\n")
    proc, seconds = symnet("check", "x.deriv", cwd=tmp_path)
    assert proc.returncode == 1
    assert "step unproved" in proc.stdout and "no numeric instance" in proc.stdout
    assert "proved" not in proc.stdout.replace("unproved", "").replace("not proved", "")


# ---------------------------------------------------------------------------
# In process: budgets and overflow


def test_each_symbolic_step_has_a_time_budget(monkeypatch):
    import symnet.kernel as kernel

    monkeypatch.setattr(kernel, "STEP_BUDGET", 1.0)
    text = ("scalar a, b, c\n"
            "  (tanh(a) + sigmoid(b) + softplus(c))**12\n"
            "= (tanh(a) + sigmoid(b) + softplus(c))**12 + exp(a)*sigmoid(a)**5"
            " - sigmoid(a)**5*exp(a)*(1 + tanh(b)**2 - tanh(b)**2)\n")
    start = time.monotonic()
    result = check_text(text, "slow.deriv")
    assert time.monotonic() - start < 120  # a hang guard; the budget itself is the detail below
    (step,) = result.steps
    assert step.verdict == "unproved" and "no symbolic decision within 1 s" in step.detail


def test_matrix_normal_forms_beyond_the_term_budget_are_unproved_quickly():
    start = time.monotonic()
    result = check_text("dim n\nmatrix A: n x n, B: n x n\n  (A + B)**64\n= (A + B)**64 + A - A\n", "big.deriv")
    assert time.monotonic() - start < 120  # a hang guard
    (step,) = result.steps
    assert step.verdict != "proved"


@pytest.mark.parametrize("text", [
    "matrix A: 2x2\n  exp(1000*A)\n= exp(1000*A)\n",
    "scalar z\n  exp(exp(exp(z)))\n= exp(exp(exp(z)))\n",
    "scalar z\n  exp(800*z**2)*exp(-800*z**2)\n= 1\n",
    "matrix A: 2x2\n  sigmoid(10000*A)\n= sigmoid(10000*A)\n",
])
def test_overflowing_true_steps_are_proved_or_unproved_never_refuted(text):
    result = check_text(text, "big.deriv")
    assert [s.verdict for s in result.steps] != ["refuted"]
    assert all("nan" not in s.detail.lower() for s in result.steps)


@pytest.mark.parametrize("text", [
    "matrix A: 2x2\n  exp(1000*A)\n= 2*exp(1000*A)\n",
    "scalar z\n  exp(exp(exp(z)))\n= exp(exp(exp(z))) + 1\n",
    "matrix A: 2x2\n  exp(10000*hadamard(A, A))\n= exp(10000*hadamard(A, A)) + ones(2, 2)\n",
    "scalar z\n  exp(800*z**2)*exp(-800*z**2)\n= 2\n",
])
def test_overflowing_false_steps_are_never_proved_and_the_report_has_no_nan(text, tmp_path):
    result = check_text(text, "big.deriv")
    assert all(s.verdict in ("refuted", "unproved") for s in result.steps)
    (tmp_path / "big.deriv").write_text(text)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", "--format", "json", str(tmp_path / "big.deriv")])
    assert code == 1

    def no_constants(name):
        raise AssertionError(f"{name} in the JSON report")

    report = json.loads(out.getvalue(), parse_constant=no_constants)
    for step in report["files"][0]["chains"][0]["steps"]:
        assert "nan" not in json.dumps(step).lower()


def test_network_widths_and_depths_beyond_the_limits_are_refused():
    from symnet import Network
    from symnet.errors import SymnetError

    for widths in ([10**9, 2], [2, -1], [0, 2], [2.5, 2], [True, 2], [None, 2], ["1e9", 2], [2] * 1002, "3,4"):
        with pytest.raises(SymnetError) as info:
            Network.dense(widths)
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------
# Known defects (strict xfails: when fixed, remove the marker)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_refused_not_read(tmp_path):
    os.mkfifo(tmp_path / "x.deriv")
    proc, seconds = symnet("check", "x.deriv", cwd=tmp_path)
    assert_rejected(proc, seconds, "x.deriv")


def test_explicit_entry_expansions_beyond_a_budget_are_refused(tmp_path):
    proc, seconds = symnet("collapse", "--layers", "200,200,200", "--entries", cwd=tmp_path)
    assert_rejected(proc, seconds)


def test_a_false_step_on_large_matrices_is_decided_fast(tmp_path):
    # 50-digit confirmation is refused beyond 64x64 (object arrays are slow): the
    # step is then unproved, never proved, and the answer comes at once
    (tmp_path / "x.deriv").write_text("matrix A: 160x160\n  A*A\n= A*A.T\n")
    proc, seconds = symnet("check", "x.deriv", cwd=tmp_path)
    assert proc.returncode == 1 and "step unproved" in proc.stdout


def test_false_scalar_steps_are_refuted_within_seconds(tmp_path):
    (tmp_path / "x.deriv").write_text(
        "scalar x, t, w1, b1, w2, b2\ndefine L = (w2*tanh(w1*x + b1) + b2 - t)**2/2\n"
        "  diff(L, w1)\n= x\n")
    proc, seconds = symnet("check", "x.deriv", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout.count("step refuted") == 1


def test_gradcheck_has_no_nan_verdicts():
    from symnet.testing.gradcheck import check

    A = np.array([[1.0, 2.0]])

    def loss(p):
        return float(np.sum(p["A"] ** 2)) if p["A"][0, 0] == 1.0 else float("nan")

    assert not check(loss, {"A": 2 * A}, {"A": A}).ok


def test_cross_entropy_of_large_logits_is_finite():
    from symnet import Network
    from symnet.networks.backprop import gradients

    g = gradients(Network.dense([1, 2], "identity"), "xent")
    point = {"x": np.array([[1.0]]), "t": np.array([[0.5, 0.5]]), "W1": np.array([[800.0, -800.0]]),
             "b1": np.zeros((1, 2))}
    assert np.isfinite(g.loss_value(**point))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_time_budget_survives_an_alarm_inside_a_gc_callback():
    import gc

    from symnet.kernel.scalar import time_limit as _time_limit

    def slow_callback(phase, info):
        if phase == "start":
            time.sleep(0.2)  # the alarm fires here

    gc.callbacks.append(slow_callback)
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            with _time_limit(0.05):
                gc.collect()
                while time.monotonic() - start < 1.0:  # a long computation: must be interrupted
                    pass
    finally:
        gc.callbacks.remove(slow_callback)


def test_collapse_of_wide_layers_in_induction_style_has_no_traceback(tmp_path):
    proc, seconds = symnet("collapse", "--style", "induction", "--layers", "600,2,2", cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0 and proc.stderr == ""
