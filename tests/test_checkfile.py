"""Checking .deriv files and Markdown notes: verdicts, reports and the ``symnet check`` command."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symnet import kernel
from symnet.cli import main
from symnet.errors import SymnetError
from symnet.notes.checkfile import (
    Report,
    check_file,
    check_paths,
    check_text,
    markdown_source,
)

HERE = Path(__file__).parent
EXAMPLES = HERE / "deriv"
GOOD = sorted((EXAMPLES / "good").iterdir())
REFUTED = sorted((EXAMPLES / "refuted").iterdir())
MALFORMED = sorted((EXAMPLES / "malformed").iterdir())
DOCS = HERE.parent / "docs" / "deriv-files.md"


def marked_lines(path: Path, marker: str) -> list[int]:
    """Lines carrying ``# <- marker`` (the expected place of a verdict or an error)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [i for i, line in enumerate(lines, start=1) if f"# <- {marker}" in line]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------
# The example files


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_true_files_are_proved(path):
    result = check_file(str(path))
    assert result.error is None, result.error
    assert result.steps
    assert [s.verdict for s in result.steps] == ["proved"] * len(result.steps), [
        (s.line, s.detail) for s in result.steps if not s.ok
    ]
    assert result.ok


@pytest.mark.parametrize("path", REFUTED, ids=lambda p: p.name)
def test_subtly_false_steps_are_refuted_at_their_line(path):
    result = check_file(str(path))
    assert result.error is None, result.error
    expected = marked_lines(path, "refuted")
    assert expected
    refuted = [s.line for s in result.steps if s.verdict == "refuted"]
    assert refuted == expected
    assert all(s.verdict == "proved" for s in result.steps if s.line not in expected)
    for s in result.steps:
        if s.verdict == "refuted":
            ce = s.counterexample
            assert ce is not None and "lhs" in ce and "rhs" in ce and "values" in ce


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.name)
def test_malformed_files_are_rejected_with_their_line(path, capsys):
    (line,) = marked_lines(path, "error")
    result = check_file(str(path))
    assert result.malformed
    assert result.error_line == line, result.error
    assert result.error.startswith(f"{path}:{line}:")
    assert result.chains == []  # rejected before any step is checked
    code, out, err = run(capsys, str(path))
    assert code == 2
    assert f"{path}:{line}:" in out
    assert f"{path}:{line}:" in err


def test_a_checker_that_always_says_yes_fails_the_soundness_suite(monkeypatch):
    monkeypatch.setattr(kernel.Context, "check",
                        lambda self, lhs, rhs, uses=None: kernel.Check("proved", _seal=kernel._SEAL))
    results = [check_file(str(p)) for p in REFUTED]
    assert all(r.ok for r in results)  # so the refuted-suite above would fail


# ---------------------------------------------------------------------------
# Files that try to run code


PAYLOADS = [
    "__import__('os').system('touch {m}')",
    "open('{m}', 'w')",
    "exec(\"open('{m}', 'w')\")",
    "eval(\"open('{m}', 'w')\")",
    "compile('1', '{m}', 'eval')",
    "(lambda: open('{m}', 'w'))()",
    "[open('{m}', 'w') for _ in (1,)]",
    "().__class__.__base__.__subclasses__()",
    "x.__init__.__globals__['os'].system('touch {m}')",
    "tanh.__globals__",
    "getattr(x, 'T')",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_code_in_a_file_is_never_run(payload, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    p = payload.format(m=marker)
    texts = {
        "step.deriv": f"matrix x: 1x3\n  x\n= {p}\n",
        "lhs.deriv": f"matrix x: 1x3\n{p}\n= x\n",
        "define.deriv": f"matrix x: 1x3\ndefine q = {p}\n",
        "shape.deriv": f"matrix x: {p}\n",
        "notes.md": f"# notes\n\n```symnet\nmatrix x: 1x3\nx = {p}\n```\n",
    }
    lines = {"step.deriv": 3, "lhs.deriv": 2, "define.deriv": 2, "shape.deriv": 1, "notes.md": 5}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    code, out, err = run(capsys, *texts)
    assert code == 2
    for name, line in lines.items():
        assert f"{name}:{line}:" in out
    assert not marker.exists()
    assert not any(tmp_path.glob("marker*"))


def test_payload_would_have_created_the_marker(tmp_path):
    marker = tmp_path / "marker"
    eval(PAYLOADS[1].format(m=marker)).close()  # noqa: S307 - shows the payloads above are live
    assert marker.exists()


# ---------------------------------------------------------------------------
# Verdicts and results


def test_step_lines_are_the_lines_of_their_equals_sign():
    text = "matrix A: 2x2, B: 2x2\n\n  (A*B).T\n= B.T*A.T     by rule\n= A.T*B.T\n\nA + B = B + A = A - B\n"
    result = check_text(text, "t.deriv")
    c1, c2 = result.chains
    assert c1.line == 3 and [s.line for s in c1.steps] == [4, 5]
    assert [s.verdict for s in c1.steps] == ["proved", "refuted"]
    assert c1.steps[0].reason == "rule"
    assert c2.line == 7 and [(s.line, s.col) for s in c2.steps] == [(7, 7), (7, 15)]
    assert [s.verdict for s in c2.steps] == ["proved", "refuted"]


def test_counterexample_lists_only_symbols_of_the_step():
    text = "matrix A: 2x2, B: 2x2, C: 3x3\nscalar z\nC = C\ntanh(z) = z\n"
    result = check_text(text, "t.deriv")
    step = result.chains[1].steps[0]
    assert step.verdict == "refuted"
    assert set(step.counterexample["values"]) == {"z"}


def test_definitions_are_unfolded_in_counterexamples():
    text = "matrix x: 1x2, W: 2x2, b: 1x2\ndefine h = x*W + b\nh = x*W\n"
    step = check_text(text, "t.deriv").steps[0]
    assert step.verdict == "refuted"
    assert set(step.counterexample["values"]) == {"x", "W", "b"}


def test_sides_of_different_shapes_are_refuted():
    result = check_text("matrix x: 1x3, W: 3x4\n(x*W).T = x*W\n", "t.deriv")
    (step,) = result.steps
    assert step.verdict == "refuted"
    assert "shapes" in step.detail


def test_unproved_is_reported_and_fails(capsys, tmp_path):
    p = tmp_path / "u.deriv"
    p.write_text("scalar a, b\nlog(a*b) = log(a) + log(b)\n")  # true for a, b > 0: not decided
    code, out, _ = run(capsys, str(p))
    assert code == 1
    assert f"{p}:2:" in out and "step unproved" in out


def test_a_kernel_defect_becomes_unproved_never_a_crash(monkeypatch):
    def broken(self, lhs, rhs, uses=None):
        raise NameError("boom")

    monkeypatch.setattr(kernel.Context, "check", broken)
    result = check_text("scalar a\na = a\n", "t.deriv")
    (step,) = result.steps
    assert step.verdict == "unproved" and "boom" in step.detail
    assert not result.ok and not result.malformed


def test_a_definition_the_kernel_rejects_is_an_error_at_its_line(monkeypatch):
    def refuse(self, sym, expr):
        raise SymnetError("no")

    monkeypatch.setattr(kernel.Context, "define", refuse)
    result = check_text("matrix x: 1x3\n\ndefine h = x\nh = x\n", "t.deriv")
    assert result.malformed and result.error_line == 3


def test_unspecified_functions_are_opaque_to_the_proof():
    text = "function f\nscalar a, z\nf(a + z) = f(a) + f(z)\nf(z)*f(z) = f(z)**2\nf(-z) = -f(z)\n"
    verdicts = [s.verdict for s in check_text(text, "t.deriv").steps]
    assert verdicts == ["refuted", "proved", "refuted"]


def test_results_keep_the_derivation_and_a_display_with_derivatives():
    result = check_text("scalar z\n# derivative of a square\ndiff(z**2, z) = 2*z\n", "d.deriv")
    chain = result.derivation.chains[0]
    assert chain.lhs.op == "diff"  # what the author wrote is what the kernel checked
    assert chain.steps[0].verdict == "proved"
    shown = result.shown.chains[0]
    assert shown.lhs == chain.lhs and shown.title == "derivative of a square"
    assert shown.steps[0].check is result.derivation.chains[0].steps[0].check
    assert "\\frac{d}{d z}" in result.latex


def test_elementwise_functions_of_1x1_matrices():
    text = "matrix s: 1x1, x: 1x3, w: 3x1\nfunction f\nrelu(s) + exp(x*w) = exp(x*w) + relu(s)\nf(s) = f(s)\n"
    assert check_text(text, "one.deriv").ok


def test_empty_file_has_nothing_to_check():
    result = check_text("# only a comment\n", "e.deriv")
    assert result.ok and result.steps == []


def test_unreadable_and_undecodable_files(tmp_path, capsys):
    binary = tmp_path / "garbage.deriv"
    binary.write_bytes(b"scalar a\na = \xff\xfe\x00")
    good = GOOD[0]
    code, out, err = run(capsys, str(tmp_path / "missing.deriv"), str(binary), str(good))
    assert code == 2
    assert "cannot read" in out and "missing.deriv" in err
    assert f"{binary}:2:5: error: not UTF-8" in out
    assert f"{good}: all" in out  # the other files are still checked


def test_control_characters_are_errors(tmp_path):
    p = tmp_path / "nul.deriv"
    p.write_bytes(b"scalar a\n\na = a\x00\n")
    result = check_file(str(p))
    assert result.malformed and (result.error_line, result.error_col) == (3, 6)


def test_directories_are_searched(tmp_path):
    (tmp_path / "a.deriv").write_text("scalar a\na = a\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("```symnet\nscalar b\nb = b\n```\n")
    (tmp_path / "sub" / "plain.md").write_text("no blocks here\n")
    report = check_paths([str(tmp_path)])
    assert [Path(f.path).name for f in report.files] == ["a.deriv", "b.md"]
    assert report.exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_paths([str(empty)]).exit_code == 2


# ---------------------------------------------------------------------------
# Markdown


def test_markdown_blocks_keep_line_numbers():
    text = "# Title\n\n```symnet\nscalar a\n```\n\n```python\nx = = 1\n```\n\n~~~ symnet extra\na = a\n~~~\n"
    source, title, blocks = markdown_source(text)
    assert title == "Title" and blocks == 2
    assert source.split("\n")[3] == "scalar a" and source.split("\n")[11] == "a = a"
    assert source.split("\n")[7] == ""


def test_markdown_declarations_carry_over_and_lines_refer_to_the_file():
    path = EXAMPLES / "refuted" / "notes.md"
    result = check_file(str(path))
    assert result.title == "Notes with a mistake"
    assert [s.line for s in result.steps if s.verdict == "refuted"] == marked_lines(path, "refuted")


def test_markdown_unclosed_fence_and_nested_fences():
    text = "````markdown\n```symnet\nnot = checked ==\n```\n````\n\n```symnet\nscalar a\na = a\n"
    result = check_text(text, "n.md")
    assert result.ok and len(result.steps) == 1 and result.steps[0].line == 9


def test_docs_page_checks_clean(capsys):
    code, out, _ = run(capsys, str(DOCS))
    assert code == 0, out
    assert "all" in out and "proved" in out


def test_docs_python_example_runs():
    text = DOCS.read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    exec(compile(code, str(DOCS), "exec"), {})  # noqa: S102 - the documentation's own example


# ---------------------------------------------------------------------------
# The command line


def test_exit_codes(capsys):
    assert run(capsys, str(GOOD[0]))[0] == 0
    assert run(capsys, str(GOOD[0]), str(REFUTED[0]))[0] == 1
    assert run(capsys, str(GOOD[0]), str(REFUTED[0]), str(MALFORMED[0]))[0] == 2


def test_text_report_points_at_the_line(capsys):
    path = EXAMPLES / "refuted" / "dropped_bias.deriv"
    code, out, _ = run(capsys, str(path))
    assert code == 1
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith(f"{path}:10: step refuted"))
    assert "= x*W1*W2*W3 + b1*W2*W3 + b3" in lines[head + 1]
    assert lines[head + 1].lstrip().startswith("10 |")
    caret = lines[head + 2]
    assert caret.index("^") == lines[head + 1].index("x*W1")
    assert "~" * 10 in caret
    assert "counterexample:" in out and "left side" in out and "right side" in out
    assert re.search(r"^\s+W3\s+= \[\[", out, flags=re.M)
    assert f"{path}: 1 refuted, 3 proved (of 4 steps)" in out


def test_verbose_lists_proved_steps(capsys):
    code, out, _ = run(capsys, "-v", str(GOOD[0]))
    assert code == 0 and f"{GOOD[0]}:7: step proved  (definition of h2)" in out


def test_json_report_schema(capsys):
    good = EXAMPLES / "good" / "collapse.deriv"
    bad = EXAMPLES / "refuted" / "wrong_derivative.deriv"
    broken = EXAMPLES / "malformed" / "undeclared.deriv"
    code, out, err = run(capsys, "--format", "json", str(good), str(bad), str(broken))
    assert code == 2
    data = json.loads(out)
    assert set(data) == {"ok", "files"} and data["ok"] is False
    assert [f["path"] for f in data["files"]] == [str(good), str(bad), str(broken)]
    f_good, f_bad, f_broken = data["files"]
    assert f_good["ok"] is True and "error" not in f_good
    (chain,) = f_good["chains"]
    assert chain["line"] == 6
    assert [s["line"] for s in chain["steps"]] == [7, 8, 9, 10]
    for s in chain["steps"]:
        assert isinstance(s["line"], int) and s["verdict"] == "proved"
        assert isinstance(s["reason"], str) and s["counterexample"] is None
    assert chain["steps"][0]["reason"] == "definition of h2"
    assert f_bad["ok"] is False
    refuted = [s for c in f_bad["chains"] for s in c["steps"] if s["verdict"] == "refuted"]
    assert [s["line"] for s in refuted] == marked_lines(bad, "refuted")
    assert all(isinstance(s["counterexample"], dict) for s in refuted)
    assert {"values", "lhs", "rhs"} <= set(refuted[0]["counterexample"])
    assert f_broken["ok"] is False and f_broken["chains"] == []
    assert f_broken["error"].startswith(f"{broken}:4:") and f_broken["error_line"] == 4
    assert f"{broken}:4:" in err


def test_latex_outputs(capsys, tmp_path):
    out_tex = tmp_path / "out.tex"
    code, out, _ = run(capsys, "--format", "latex", "--standalone", "--latex", str(out_tex), str(GOOD[0]),
                       str(EXAMPLES / "good" / "scalar.deriv"), str(REFUTED[0]))
    assert code == 1
    assert out.startswith("\\documentclass") and "\\begin{align*}" in out
    assert "\\frac{d}{d z}" in out  # diff(...) is shown as a derivative
    assert "\\text{refuted" in out and "counterexample" in out
    assert out_tex.read_text() == out


def test_pdf_without_pdflatex_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = run(capsys, "--pdf", str(tmp_path / "x.pdf"), str(GOOD[0]))
    assert code == 2
    assert "pdflatex" in err
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_pdf_compiles(capsys, tmp_path):
    pdf = tmp_path / "report.pdf"
    code, _, err = run(capsys, "--pdf", str(pdf), *map(str, GOOD), str(REFUTED[0]), str(MALFORMED[0]))
    assert code == 2, err
    assert pdf.read_bytes().startswith(b"%PDF")


def test_parallel_jobs_give_the_same_report(capsys):
    files = [str(GOOD[0]), str(REFUTED[0]), str(MALFORMED[0]), str(EXAMPLES / "good" / "notes.md")]
    code1, out1, _ = run(capsys, "--format", "json", *files)
    code2, out2, _ = run(capsys, "--format", "json", "-j", "2", *files)
    assert code1 == code2 == 2
    assert json.loads(out1) == json.loads(out2)


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["check", "--format", "yaml", str(GOOD[0])])
    assert info.value.code == 2
    assert run(capsys, "--trials", "0", str(GOOD[0]))[0] == 2


def test_report_object():
    report = Report([check_text("scalar a\na = a\n", "a.deriv"), check_text("scalar a\na = 2*a\n", "b.deriv")])
    assert report.exit_code == 1 and not report.ok
    assert json.loads(report.to_json())["files"][1]["chains"][0]["steps"][0]["verdict"] == "refuted"
    assert "b.deriv:2: step refuted" in report.to_text()


# ---------------------------------------------------------------------------
# Fuzzing the whole pipeline: a result or a SymnetError, nothing else

_TOKENS = [
    "A", "B", "x", "a", "z", "f(", "tanh(", "relu(", "exp(", "sigmoid(", "hadamard(", "diff(",
    "trace(", "ones(2, 2)", "eye(2)", "+", "-", "*", "/", "**", "(", ")", ".T", ", ", "2", "0.5",
    " ", " = ", " by r", "\n", "\n= ", "-1", "0",
]


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=14))
def test_fuzz_check_text(tokens):
    text = "matrix A: 2x2, B: 2x2, x: 1x2\nscalar a, z\nfunction f\n" + "".join(tokens) + "\n= a\n"
    result = check_text(text, "fuzz.deriv", trials=1)
    if result.malformed:
        assert re.match(r"^fuzz\.deriv:\d+:\d+: ", result.error)
    for step in result.steps:
        assert step.verdict in ("proved", "refuted", "unproved")
