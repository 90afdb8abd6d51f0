"""What a new user meets first (issue 10): installing, starting, and the first commands.

Each test here failed before its fix: the wheel without the proof library, ``--version``,
the pytest plugin importing SymPy at start-up, tracebacks where one line and exit 2 are
promised, and numbers that overflowed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symnet.cli import main

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def python(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          env=environment, timeout=120)


# ---------------------------------------------------------------------------
# Packaging: the proof library ships with the wheel


def test_every_package_directory_is_listed_in_pyproject():
    """``packages`` is an explicit list (for symnet._proofs); a new subpackage must join it."""
    setuptools = pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    package_dirs = setuptools.get("package-dir", {})
    for name in listed:
        where = ROOT / package_dirs.get(name, name.replace(".", "/"))
        assert where.is_dir(), f"pyproject lists {name}, but {where} does not exist"
    for directory in (ROOT / "symnet").rglob("*"):
        if directory.is_dir() and directory.name != "__pycache__" and any(directory.glob("*.py")):
            name = ".".join(directory.relative_to(ROOT).parts)
            assert name in listed, f"{name} is not in [tool.setuptools] packages of pyproject.toml"


def test_the_shipped_proof_library_is_the_clone_s_in_a_clone():
    from symnet.notes.proofs import shipped_directory

    assert shipped_directory() == ROOT / "proofs"
    setuptools = pyproject()["tool"]["setuptools"]
    assert setuptools["package-dir"]["symnet._proofs"] == "proofs"
    shipped = setuptools["package-data"]["symnet._proofs"]
    suffixes = {p.suffix for p in (ROOT / "proofs").iterdir() if p.is_file()}
    assert {f"*{s}" for s in suffixes} <= set(shipped), "a kind of proof file would not ship"


def _can_build_offline() -> str | None:
    """Why an installed wheel cannot be tried here, or None."""
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401
    except ImportError:
        return "the venv module is not available"
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode != 0:
        return "pip is not available"
    return None


@pytest.mark.slow
def test_the_installed_wheel_checks_its_proofs_outside_the_source_tree(tmp_path):
    """``pip install .`` then ``symnet proofs check`` anywhere: the library is package data."""
    reason = _can_build_offline()
    if reason:
        pytest.skip(reason)
    source = tmp_path / "src"  # a copy: building must not leave build/ or *.egg-info in the clone
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("symnet", "proofs"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    wheels = tmp_path / "whl"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q",
                            "-w", str(wheels)], capture_output=True, text=True, env=env, timeout=180)
    if built.returncode != 0:
        if "setuptools" in built.stderr and ("No matching distribution" in built.stderr
                                             or "Could not find" in built.stderr):
            pytest.skip("cannot build a wheel offline: setuptools is not available to pip")
        pytest.fail(f"pip wheel failed:\n{built.stdout}\n{built.stderr}")
    (wheel,) = wheels.glob("symnet-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "symnet/_proofs/c01a_three_layers.deriv" in names
    assert "symnet/_proofs/c01b_any_depth.py" in names
    assert not any(n.startswith("proofs/") for n in names), "no top-level 'proofs' package"

    venv_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(venv_dir)], check=True, env=env, timeout=120)
    bindir = venv_dir / ("Scripts" if os.name == "nt" else "bin")
    vpython = bindir / ("python.exe" if os.name == "nt" else "python")
    # the system pip, seen through --system-site-packages, installs into the venv
    subprocess.run([str(vpython), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q",
                    str(wheel)],
                   check=True, env=env, capture_output=True, timeout=180)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    symnet = bindir / ("symnet.exe" if os.name == "nt" else "symnet")
    done = subprocess.run([str(symnet), "proofs", "check", "--only", "C1"], cwd=elsewhere,
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "_proofs" in done.stdout and str(ROOT) not in done.stdout
    assert "C1" in done.stdout and "OK" in done.stdout
    version = subprocess.run([str(symnet), "--version"], cwd=elsewhere, capture_output=True, text=True,
                             env=env, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == "symnet 0.1.0", version.stderr


# ---------------------------------------------------------------------------
# Start-up: --version, --help and the pytest plugin do not load SymPy


def test_version_prints_the_package_version(capsys):
    import symnet

    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"symnet {symnet.__version__}"
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert symnet.__version__ == project["version"]


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["grad", "--help"], ["check", "--help"]],
                         ids=["version", "help", "grad-help", "check-help"])
def test_version_and_help_do_not_import_sympy(argv):
    code = ("import sys\nfrom symnet.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "assert 'sympy' not in sys.modules, 'sympy was imported'\n")
    done = python("-c", code)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout or done.stdout.startswith("symnet ")


def test_importing_the_pytest_plugin_does_not_import_symnet_s_maths():
    done = python("-c", "import sys, symnet.testing.pytest_plugin\n"
                        "heavy = [m for m in ('sympy', 'numpy', 'symnet.kernel', 'symnet.notes.deriv') if m in sys.modules]\n"
                        "assert not heavy, heavy\n")
    assert done.returncode == 0, done.stderr


def test_a_pytest_run_without_deriv_files_does_not_import_sympy(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\ndef test_light():\n    assert 'sympy' not in sys.modules\n", encoding="utf-8")
    (tmp_path / "conftest.py").write_text("", encoding="utf-8")
    from importlib.metadata import entry_points

    installed = any(ep.name == "symnet" for ep in entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "symnet.testing.pytest_plugin"]  # installed: loaded by its entry point
    done = python("-m", "pytest", "-q", *plugin, "-p", "no:cacheprovider",
                  "-p", "no:hypothesispytest", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_public_api_still_imports_by_name():
    import symnet
    import symnet.networks.collapse  # noqa: F401 - binding the submodule must not hide the function

    assert callable(symnet.collapse) and callable(symnet.check) and callable(symnet.gradients)
    assert symnet.Network.__name__ == "Network"
    assert set(symnet.__all__) >= {"Network", "collapse", "check", "gradients", "SymnetError"}


# ---------------------------------------------------------------------------
# One clear line and exit 2, or a working answer


def test_a_zero_slope_network_collapses_to_a_constant(capsys):
    import sympy as sp

    import symnet

    result = symnet.collapse(symnet.Network.dense([3, 4, 2], "affine(a=0)"))
    assert result.collapsible and result.ok
    assert isinstance(result.W, sp.ZeroMatrix) and result.W.shape == (3, 2)
    code, out, err = run(capsys, "collapse", "--layers", "3,4,2", "--activation", "affine(a=0)")
    assert code == 0 and "Traceback" not in err
    assert "W' = 0" in out


@pytest.mark.parametrize("style", ["chain", "induction"])
def test_a_zero_slope_layer_in_a_longer_affine_stack(capsys, style):
    code, out, err = run(capsys, "collapse", "--layers", "2,3,3,2", "--style", style,
                         "--activations", "affine(a=2),affine(a=0, c=1),affine(a=3)")
    assert code == 0, err
    assert "W' = 0" in out


def test_an_empty_matrix_sum_is_a_shape_error_not_an_index_error():
    from symnet.errors import ShapeError
    from symnet.networks.composer import matadd

    with pytest.raises(ShapeError):
        matadd()


def test_the_gradients_of_a_zero_slope_network_evaluate(capsys):
    code, out, err = run(capsys, "grad", "--layers", "2,2,1", "--activation", "affine(a=0)", "--at", "0")
    assert code == 0, err
    assert "passed" in out and "dL/dW1 = [[0., 0.]," in out


def test_compiled_constant_activation_keeps_the_matrix_shape():
    import numpy as np

    from symnet import Network, gradients

    g = gradients(Network.dense([2, 3, 2], ["tanh", "affine(a=0, c=1)"]), "sse")
    point = g.random_point(1, batch=4)
    values = g.function()(**point)
    for p in g.parameters:
        assert np.shape(values[p]) == np.shape(point[p])
    assert np.all(values["W2"] == 0) and np.all(values["b2"] == 0)


@pytest.mark.parametrize("argv", [["grad", "--layers", "2,3,1", "--at", "-1"],
                                  ["collapse", "--layers", "2,2", "--activation", "relu", "--seed", "-1"],
                                  ["check", "--seed", "-1", "proofs/c01a_three_layers.deriv"]],
                         ids=["grad-at", "collapse-seed", "check-seed"])
def test_a_negative_seed_is_one_line_and_exit_2(capsys, monkeypatch, argv):
    monkeypatch.chdir(ROOT)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("symnet: error:") and "seed" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("only", ["C99", "C1,C99", "C0"])
def test_an_unknown_claim_is_bad_input(capsys, monkeypatch, tmp_path, only):
    monkeypatch.chdir(tmp_path)  # the default library: symnet's own
    code, out, err = run(capsys, "proofs", "check", "--only", only)
    assert code == 2 and out == ""
    assert err.startswith("symnet: error:") and len(err.strip().splitlines()) == 1
    if only != "C0":
        assert "C99" in err and "C1-C14" in err


def test_an_unknown_claim_in_a_given_directory_names_the_known_ones(capsys, tmp_path):
    shutil.copy(ROOT / "proofs" / "c01a_three_layers.deriv", tmp_path)
    code, _, err = run(capsys, "proofs", "check", str(tmp_path), "--only", "C2")
    assert code == 2 and "the known claims are C1" in err


def test_a_wide_network_s_gradient_check_is_sampled(capsys):
    # its time is measured by the benchmark, never asserted here (a loaded CI machine is slow)
    code, out, err = run(capsys, "grad", "--layers", "300,300,300", "--at", "0")
    assert code == 0, err
    assert "Sampled: finite differences checked 800 of 180600 gradient entries" in out
    assert "--max-entries 0 checks every entry" in out


def test_max_entries_caps_the_check_and_is_reported_in_json(capsys):
    import json

    code, out, _ = run(capsys, "grad", "--layers", "3,4,2", "--at", "1", "--max-entries", "2",
                       "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["check"]["checked"] == 8
    assert data["check"]["sampled"]["W1"] == {"checked": 2, "entries": 12}
    code, out, _ = run(capsys, "grad", "--layers", "3,4,2", "--at", "1", "--max-entries", "0")
    assert code == 0 and "Sampled" not in out and "26 entries checked" in out


@pytest.mark.parametrize("argv, message", [
    (["--batch", "3"], "--batch needs --at"),
    (["--max-entries", "3"], "--max-entries needs --at"),
    (["--at", "0", "--max-entries", "-1"], "--max-entries -1"),
    (["--loss", "huber"], "unknown loss 'huber'; known: sse, mse, xent, bce, hinge"),
])
def test_grad_options_without_effect_or_out_of_range_are_errors(capsys, argv, message):
    code, out, err = run(capsys, "grad", "--layers", "2,3,1", *argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_trials_zero_and_minus_one_give_the_same_message(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    messages = []
    for n in ("0", "-1"):
        code, out, err = run(capsys, "check", "--trials", n, "proofs/c01a_three_layers.deriv")
        assert code == 2 and out == ""
        messages.append(err.replace(f"--trials {n}", "--trials N"))
    assert messages[0] == messages[1] and "at least 1" in messages[0]


def test_loss_choices_are_shown_in_help_and_agree_with_the_library(capsys):
    from symnet.cli import grad
    from symnet.networks import losses

    assert grad.LOSSES == tuple(losses.LOSSES)
    assert grad.LOSS_ALIASES == losses._ALIASES
    code, out, _ = run(capsys, "grad", "--help")
    assert code == 0 and "--loss {sse,mse,xent,bce,hinge}" in out
    code, out, err = run(capsys, "grad", "--layers", "2,3,2", "--loss", "Cross_Entropy")
    assert code == 0, err


# ---------------------------------------------------------------------------
# Numbers: stable compiled forms, against 50-digit references

HOSTILE_Z = [-800.0, -50.0, -1e-8, 0.0, 1e-8, 50.0, 800.0]


def _compiled_f_and_derivative(act):
    import sympy as sp

    from symnet.kernel import elementwise_derivative
    from symnet.networks.codegen import Program
    from symnet.networks.composer import elementwise

    z, y, d = (sp.MatrixSymbol(n, 1, 1) for n in ("z", "y", "d"))
    program = Program(batched=[z], parameters=[], scalars=[],
                      assignments=[(y, elementwise(act.lam, z)),
                                   (d, elementwise(elementwise_derivative(act.lam), z))],
                      outputs={"df": d}, loss=y)
    function = program.compile()

    def at(value):
        out = function(z=np.array([[value]]))
        return float(np.ravel(out["loss"])[0]), float(np.ravel(out["df"])[0])

    return at


def _smooth_catalogue():
    import sympy as sp

    from symnet.networks.activations import CATALOGUE, parse_spec

    out = []
    for name in CATALOGUE:
        act = parse_spec(name)
        if all(v.is_number for _, v in act.params):
            kinked = act.body.has(sp.Piecewise, sp.Heaviside, sp.Abs, sp.Max, sp.Min, sp.sign)
            out.append((name, act, kinked))
    return out


def _close(value: float, reference, rel: float = 1e-12) -> bool:
    r = float(reference)
    if r == 0.0:  # below the float range: the compiled value must have underflowed too
        return abs(value) <= 1e-300
    return abs(value - r) <= rel * abs(r)


@pytest.mark.parametrize("name, act, kinked", _smooth_catalogue(), ids=[n for n, _, _ in _smooth_catalogue()])
def test_compiled_activations_and_derivatives_match_50_digit_references(name, act, kinked):
    """f and f' compiled, at z in {-800, -50, -1e-8, 0, 1e-8, 50, 800}, within 1e-12 of
    mpmath at 50 digits (tiny saturated values included; no inf, no NaN)."""
    import mpmath
    import sympy as sp

    from symnet.networks.activations import Z

    compiled = _compiled_f_and_derivative(act)
    with mpmath.workdps(50):
        reference = sp.lambdify(Z, act.body, modules="mpmath")
        for z in HOSTILE_Z:
            f, df = compiled(z)
            rf = reference(mpmath.mpf(z))
            assert _close(f, rf), f"{name}({z}) = {f!r}, 50 digits: {mpmath.nstr(rf, 15)}"
            if kinked and z == 0.0:
                continue  # a kink: the convention is tested with the catalogue
            rd = mpmath.diff(reference, mpmath.mpf(z))
            assert _close(df, rd), f"{name}'({z}) = {df!r}, 50 digits: {mpmath.nstr(rd, 15)}"


def test_sinc_gradients_are_finite_where_a_pre_activation_is_0():
    from symnet import Network, gradients

    g = gradients(Network.dense([2, 3, 1], "sinc"), "sse")
    point = g.random_point(0, batch=2)
    point["b1"] = np.zeros_like(point["b1"])
    point["x"] = np.zeros_like(point["x"])  # every z1 entry is exactly 0: sinc'(0) = 0
    values = g.function()(**point)
    for p in g.parameters:
        assert np.all(np.isfinite(values[p])), p
    assert np.all(values["W1"] == 0) and np.all(values["b1"] == 0)


def test_silu_gradient_is_finite_near_minus_800():
    from symnet import Network, gradients

    g = gradients(Network.dense([1, 1], "silu"), "sse")
    values = g.function()(x=np.array([[1.0]]), t=np.array([[1.0]]), W1=np.array([[0.0]]),
                          b1=np.array([[-800.0]]))
    assert np.isfinite(values["b1"]).all() and values["b1"][0, 0] == 0.0


@pytest.mark.parametrize("logits", [(800.0, -800.0), (1000.0, 999.0), (-745.0, -800.0), (50.0, -1e-8)])
def test_cross_entropy_of_large_logits_matches_50_digits(logits):
    """xent and its gradient with a log-sum-exp shift: finite and exact for any logits."""
    import mpmath

    from symnet import Network, gradients

    g = gradients(Network.dense([1, 2], "identity"), "xent")
    t = [0.25, 0.75]
    point = {"x": np.array([[1.0]]), "t": np.array([t]), "W1": np.array([list(logits)]),
             "b1": np.zeros((1, 2))}
    values = g.function()(**point)
    with mpmath.workdps(50):
        y = [mpmath.mpf(v) for v in logits]
        lse = mpmath.log(sum(mpmath.exp(v) for v in y))
        loss = -sum(ti * (yi - lse) for ti, yi in zip(t, y))
        grad = [mpmath.exp(yi - lse) * sum(t) - ti for ti, yi in zip(t, y)]
    assert np.isfinite(values["loss"]) and _close(values["loss"], loss, 1e-13)
    for j in range(2):
        assert _close(float(values["b1"][0, j]), grad[j], 1e-12), (j, values["b1"], grad)
    assert np.isfinite(g.loss_value(**point))


def test_stable_forms_keep_float32():
    from symnet import Network, gradients

    for act in ("silu", "softplus", "sinc", "selu"):
        g = gradients(Network.dense([2, 3, 2], act), "xent")
        point = {k: v.astype(np.float32) for k, v in g.random_point(1, batch=3).items()}
        values = g.function()(**point)
        assert all(values[p].dtype == np.float32 for p in g.parameters), act


def test_long_work_says_what_it_is_doing_on_stderr(capsys):
    from symnet.cli import main

    widths = ",".join(["3"] * 18)
    assert main(["grad", "--layers", widths, "--activation", "tanh"]) == 0
    captured = capsys.readouterr()
    assert "symnet: deriving and checking the gradients of 17 layers" in captured.err
    assert "symnet:" not in captured.out  # stdout stays the result
    assert main(["grad", "--layers", "60,60,2", "--at", "0", "--max-entries", "0"]) == 0
    assert "checking 3782 gradient entries" in capsys.readouterr().err
