"""The proof library (proofs/) and its framework (symnet.notes.proofs, ``symnet proofs``).

The whole library is checked once (a module fixture, a few seconds) and its
document compiled with pdflatex; small libraries written to ``tmp_path`` check
that a broken proof, a crashing proof, failing evidence or a missing claim make
``symnet proofs check`` exit 1.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from symnet.cli import main
from symnet.errors import SymnetError
from symnet.notes.proofs import (
    REQUIRED,
    Section,
    Series,
    check_directory,
    compile_pdf,
    deriv_metadata,
    latex_errors,
    markup_latex,
    parse_claims,
    plot,
    run_file,
)

ROOT = Path(__file__).resolve().parent.parent
PROOFS = ROOT / "proofs"
THREE_LAYERS = PROOFS / "c01a_three_layers.deriv"
PDFLATEX = shutil.which("pdflatex")


@pytest.fixture(scope="module")
def library():
    return check_directory(PROOFS, require=REQUIRED), None


@pytest.fixture(scope="module")
def document(library):
    return library[0].to_latex()


# ---------------------------------------------------------------------------
# the library


def test_the_whole_library_checks_green(library):
    report, _ = library
    failed = [(c.claim, [p.error or [i.detail for i in p.items if not i.ok] for p in c.parts])
              for c in report.claims if not c.ok]
    assert not failed, failed
    assert report.missing == ()
    assert report.ok and report.exit_code == 0


def test_every_claim_c1_to_c13_has_a_section(library, document):
    report, _ = library
    for claim in REQUIRED:
        result = report.claim(claim)
        assert result is not None and result.parts, claim
        assert re.search(r"\\section\{" + claim + r": ", document), claim


def test_every_required_claim_has_something_checked(library):
    report, _ = library
    for claim in REQUIRED:
        result = report.claim(claim)
        assert result.status != "nothing checked", claim
        assert any(i.kind != "info" for p in result.parts for i in p.items), claim


def test_numeric_evidence_is_labelled_and_never_called_a_proof(library, document):
    report, _ = library
    for c in report.claims:
        kinds = {i.kind for p in c.parts for i in p.items}
        if "numeric" in kinds:
            assert "numeric evidence" in c.status
        if kinds & {"kernel", "exact"}:
            assert c.status.startswith("proved")
        else:
            assert not c.status.startswith("proved"), c.claim
    assert document.count("Numeric evidence.") >= 10


def test_the_collapse_chain_of_c1_reads_as_in_the_claims(library):
    c1 = library[0].claim("C1")
    deriv = next(p for p in c1.parts if p.source.endswith(".deriv"))
    latex = deriv.items[0].latex
    for piece in (r"\mathbf{h}_{2} \mathbf{W}_{3} + \mathbf{b}_{3}",
                  r"\mathbf{x} \mathbf{W}_{1} \mathbf{W}_{2} \mathbf{W}_{3}",
                  r"\mathbf{x} \mathbf{W}' + \mathbf{b}'"):
        assert piece in latex
    assert deriv.items[0].steps == 6


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (Debian: texlive-latex-base, "
                    "texlive-latex-recommended, texlive-fonts-recommended)")
def test_the_document_compiles_with_pdflatex(document, tmp_path):
    out = tmp_path / "proofs.pdf"
    compile_pdf(document, out)
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 50_000
    if shutil.which("pdftotext"):
        import subprocess

        text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True).stdout
        for claim in REQUIRED:
            assert f"{claim}: " in text, claim


# ---------------------------------------------------------------------------
# broken proofs make the check fail


def _copy(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_dropped_bias_makes_proofs_check_exit_1(tmp_path, capsys):
    good = THREE_LAYERS.read_text(encoding="utf-8")
    assert main(["proofs", "check", str(_copy(tmp_path, "c01.deriv", good).parent)]) == 0
    bad = good.replace("= x*W1*W2*W3 + b1*W2*W3 + b2*W3 + b3 ", "= x*W1*W2*W3 + b2*W3 + b3         ")
    assert bad != good
    _copy(tmp_path, "c01.deriv", bad)
    capsys.readouterr()
    assert main(["proofs", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    line = 1 + next(i for i, t in enumerate(bad.splitlines()) if t.startswith("= x*W1*W2*W3 + b2*W3"))
    assert "C1   FAILED" in out and "refuted" in out and f"line {line}: refuted" in out


def test_a_malformed_deriv_proof_fails_the_claim(tmp_path, capsys):
    text = THREE_LAYERS.read_text(encoding="utf-8").replace("define h1 = x*W1 + b1", "define h1 = x*W1 + + ")
    _copy(tmp_path, "c01.deriv", text)
    assert main(["proofs", "check", str(tmp_path)]) == 1
    assert "malformed" in capsys.readouterr().out


def test_a_deriv_without_a_claim_header_fails(tmp_path):
    text = "\n".join(line for line in THREE_LAYERS.read_text().splitlines()
                     if not line.startswith("# claim"))
    _copy(tmp_path, "nameless.deriv", text)
    report = check_directory(tmp_path)
    assert not report.ok and "claim" in report.claims[0].parts[0].error


PY_HEAD = '''
import sympy as sp
from symnet.notes.proofs import Section
CLAIM, TITLE, STATEMENT = "C2", "a test", "a statement"
'''


def test_a_refuted_step_in_a_python_proof_fails(tmp_path, capsys):
    _copy(tmp_path, "c02.py", PY_HEAD + '''
def run():
    s = Section(CLAIM, TITLE, STATEMENT)
    z = sp.Symbol("z", real=True)
    s.prove("tanh' (wrong)", sp.diff(sp.tanh(z), z), [(1 + sp.tanh(z) ** 2, "a wrong derivative")])
    return s
''')
    assert main(["proofs", "check", str(tmp_path), "-v"]) == 1
    assert "refuted" in capsys.readouterr().out


def test_failing_evidence_fails_the_claim(tmp_path):
    _copy(tmp_path, "c02.py", PY_HEAD + '''
def run():
    s = Section(CLAIM, TITLE, STATEMENT)
    s.table(["n", "error"], [["1", "0.5"]], "an error that should be small", ok=False)
    return s
''')
    report = check_directory(tmp_path)
    assert not report.ok and report.claim("C2").status == "FAILED"


def test_a_crashing_python_proof_fails_and_names_its_line(tmp_path, capsys):
    _copy(tmp_path, "c02.py", PY_HEAD + '''
def run():
    raise ValueError("boom")
''')
    assert main(["proofs", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "c02.py:7: ValueError: boom" in out


def test_a_python_proof_must_return_a_section(tmp_path):
    _copy(tmp_path, "c02.py", PY_HEAD + "\ndef run():\n    return 42\n")
    assert "Section" in check_directory(tmp_path).claims[0].parts[0].error


def test_a_missing_required_claim_fails(tmp_path, capsys):
    shutil.copy(THREE_LAYERS, tmp_path / "c01.deriv")
    assert main(["proofs", "check", str(tmp_path), "--require", "C1"]) == 0
    assert main(["proofs", "check", str(tmp_path), "--require", "C1-C2"]) == 1
    assert "C2   MISSING" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# the command line


def test_check_json(tmp_path, capsys):
    shutil.copy(THREE_LAYERS, tmp_path / "c01.deriv")
    assert main(["proofs", "check", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["missing"] == []
    (claim,) = data["claims"]
    assert claim["claim"] == "C1" and claim["status"] == "proved" and claim["kernel_steps"] == 6


def test_check_in_two_processes_gives_the_same_verdicts(tmp_path):
    shutil.copy(THREE_LAYERS, tmp_path / "c01.deriv")
    shutil.copy(PROOFS / "c12_xor.py", tmp_path / "c12.py")
    one, two = check_directory(tmp_path, jobs=1), check_directory(tmp_path, jobs=2)
    assert [(c.claim, c.status) for c in one.claims] == [(c.claim, c.status) for c in two.claims]
    assert two.ok


def test_build_writes_the_tex(tmp_path, capsys):
    shutil.copy(THREE_LAYERS, tmp_path / "c01.deriv")
    out = tmp_path / "out.tex"
    assert main(["proofs", "build", str(tmp_path), "--tex", str(out)]) == 0
    tex = out.read_text()
    assert tex.startswith("\\documentclass") and "\\section{C1: " in tex and tex.rstrip().endswith("\\end{document}")


def test_build_needs_an_output(tmp_path, capsys):
    shutil.copy(THREE_LAYERS, tmp_path / "c01.deriv")
    assert main(["proofs", "build", str(tmp_path)]) == 2
    assert "--tex" in capsys.readouterr().err


def test_bad_directory_and_bad_claims_exit_2(tmp_path, capsys):
    assert main(["proofs", "check", str(tmp_path / "nowhere")]) == 2
    assert main(["proofs", "check", str(tmp_path)]) == 2  # empty: no proof files
    shutil.copy(THREE_LAYERS, tmp_path / "c01.deriv")
    assert main(["proofs", "check", str(tmp_path), "--require", "X9"]) == 2
    assert main(["proofs"]) == 2


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed")
def test_latex_errors_are_reported_with_the_log_lines(tmp_path):
    with pytest.raises(SymnetError, match="Undefined control sequence"):
        compile_pdf("\\documentclass{article}\\begin{document}\\nosuchmacro\\end{document}\n",
                    tmp_path / "x.pdf")


# ---------------------------------------------------------------------------
# pieces of the framework


def test_parse_claims():
    assert parse_claims("C1-C3,C5, c7") == ("C1", "C2", "C3", "C5", "C7")
    with pytest.raises(SymnetError):
        parse_claims("C3-C1")
    with pytest.raises(SymnetError):
        parse_claims("D4")


def test_deriv_metadata():
    meta = deriv_metadata("# claim: C2\n# title: A\n#   longer title\n# show: Wc as W'\n\nmatrix x: 1x2\n")
    assert meta["claim"] == "C2" and meta["title"] == "A longer title" and meta["show"] == {"Wc": "W'"}


def test_markup_escapes_text_and_keeps_math():
    assert markup_latex("50% of $x_1$ & |y|") == r"50\% of $x_1$ \& \textbar{}y\textbar{}"


def test_plots_never_draw_degenerate_pieces():
    import math

    xs = [i / 1000 for i in range(-3000, 3001)]  # far denser than the drawing resolution
    pic = plot([Series(xs, [math.tanh(x) for x in xs]), Series(xs, [1 - math.tanh(x) ** 2 for x in xs], "dashed")],
               (-3, 3), (-1.2, 1.2), width=40, height=25, title="tanh", xticks=(-3, 3), yticks=(0,))
    counts = [int(n) for n in re.findall(r"\\qbezier\[(\d+)\]", pic)]
    assert counts and min(counts) >= 2  # an explicit dot count: LaTeX's own divides by zero
    assert pic.startswith("\\setlength") and pic.rstrip().endswith("\\end{picture}")


def test_latex_errors_extracts_the_error_lines():
    log = "line\n! Undefined control sequence.\nl.3 \\nosuchmacro\n\nmore\n"
    assert latex_errors(log).startswith("! Undefined control sequence.\nl.3")


def test_a_section_records_kernel_verdicts(tmp_path):
    import sympy as sp

    s = Section("C1", "t", "s")
    z = sp.Symbol("z", real=True)
    s.prove("", sp.diff(sp.tanh(z), z), [(1 - sp.tanh(z) ** 2, "tanh'")])
    assert s.ok and s.items[0].kind == "kernel" and s.items[0].steps == 1
    s.fact("a false fact", False)
    assert not s.ok


def test_run_file_reports_a_deriv_proof(tmp_path):
    part = run_file(THREE_LAYERS)
    assert part.ok and part.claim == "C1" and part.items[0].steps == 6


def test_a_proof_that_only_talks_proves_nothing(tmp_path):
    _copy(tmp_path, "c02.py", PY_HEAD + '''
def run():
    s = Section(CLAIM, TITLE, STATEMENT)
    s.text("It is obvious.")
    return s
''')
    report = check_directory(tmp_path)
    assert not report.ok and report.claim("C2").status == "FAILED"


def test_kernel_labels_come_only_from_the_kernel():
    s = Section("C1", "t", "s")
    with pytest.raises(ValueError):
        s.fact("trust me", True, kind="kernel")
    with pytest.raises(TypeError):
        s.check("trust me", True)


def test_proofs_marked_together_share_one_worker_and_the_load_is_balanced(tmp_path):
    from symnet.notes.proofs import _batches

    files = []
    for name, head in [("a.py", "# seconds: 2\n# together: cat\n"), ("b.py", "# seconds: 1\n# together: cat\n"),
                       ("c.py", "# seconds: 1.5\n"), ("d.py", "# seconds: 1\n"), ("e.py", "# seconds: 0.2\n")]:
        path = tmp_path / name
        path.write_text(head + "CLAIM = 'C1'\n", encoding="utf-8")
        files.append(path)
    batches = _batches(files, 2)
    together = [b for b in batches if files[0] in b]
    assert len(together) == 1 and files[1] in together[0]
    assert sorted(len(b) for b in batches) == [2, 3]  # {a, b} against {c, d, e}
    assert sorted(p for b in batches for p in b) == sorted(files)


def test_the_command_entry_exits_with_main_s_code_without_teardown():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "symnet", "collapse", "--layers", "2,x,1", "--activation", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "symnet: error:" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "symnet", "collapse", "--layers", "2,2,1", "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("}")  # flushed before the exit
