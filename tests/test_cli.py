"""The ``symnet`` command: outputs, exit codes, one-line errors."""

import json
import shutil
import subprocess
import sys

import pytest

from symnet.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_collapse_prints_the_textbook_chain(capsys):
    code, out, err = run(capsys, "collapse", "--layers", "3,4,4,2")
    assert code == 0 and err == ""
    lines = [l.strip().split("  ")[0] for l in out.splitlines()]
    assert "y = h2 W3 + b3" in lines
    for expected in ["= (h1 W2 + b2) W3 + b3", "= h1 W2 W3 + b2 W3 + b3",
                     "= (x W1 + b1) W2 W3 + b2 W3 + b3", "= x W1 W2 W3 + b1 W2 W3 + b2 W3 + b3",
                     "= x W' + b'"]:
        assert expected in lines
    assert "with W' = W1 W2 W3, b' = b1 W2 W3 + b2 W3 + b3" in out


def test_collapse_latex_is_an_align_block(capsys):
    code, out, _ = run(capsys, "collapse", "--layers", "3,4,4,2", "--format", "latex")
    assert code == 0
    assert out.startswith("\\begin{align*}") and "\\end{align*}" in out
    assert "All 6 steps proved" in out and "Collapsible" in out  # the verdict too, not only the chain
    assert r"\mathbf{x} \mathbf{W}_{1} \mathbf{W}_{2} \mathbf{W}_{3} + \mathbf{b}_{1}" in out
    assert r"\text{distributivity}" in out


def test_collapse_json(capsys):
    code, out, _ = run(capsys, "collapse", "--layers", "3,4,2", "--activation", "tanh", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["collapsible"] is False and data["W"] is None and data["rank_bound"] is None
    assert set(data["witness"]) >= {"weights", "input_a", "input_b", "t", "lhs", "rhs"}
    assert set(data["witness"]["weights"]) == {"W1", "b1", "W2", "b2"}


def test_collapse_markdown_and_output_file(capsys, tmp_path):
    target = tmp_path / "c.md"
    code, out, _ = run(capsys, "collapse", "--layers", "2,2", "--format", "markdown", "-o", str(target))
    assert code == 0 and out == ""
    text = target.read_text()
    assert "$$" in text and "\\begin{aligned}" in text


def test_activations_per_layer(capsys):
    code, out, _ = run(capsys, "collapse", "--layers", "2,3,3,1",
                       "--activations", "identity,affine(a=2, c=-1),tanh", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [s["layers"] for s in data["segments"]] == [[1, 2]]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["collapse", "--layers", "3,4,x!"], "width 2"),
        (["collapse", "--layers", "3"], "at least two"),
        (["collapse", "--layers", "3,4", "--activation", "nope"], "unknown activation 'nope'"),
        (["collapse", "--layers", "3,4,2", "--activations", "tanh"], "1 activations given for 2 layers"),
        (["collapse", "--layers", "3,4,2", "--activations", "tanh,(relu"], "unbalanced"),
        (["collapse", "--layers", "3,99999999"], "exceeds the limit"),
        (["collapse"], "required"),
        (["collapse", "--layers", "3,4", "--format", "pdf"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) if "pdf" in argv else _nullcontext():
        code = main(argv)
        assert code == 2
    out, err = capsys.readouterr()
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.skipif(shutil.which("symnet") is None, reason="console script not installed")
def test_console_script_end_to_end():
    proc = subprocess.run(["symnet", "collapse", "--layers", "3,4,4,2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "x W' + b'" in proc.stdout
    bad = subprocess.run(["symnet", "collapse", "--layers", "3,zz!"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("symnet: error:") and "Traceback" not in bad.stderr


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "symnet.cli", "collapse", "--layers", "2,2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
