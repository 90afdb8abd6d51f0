"""Every code example in README.md and docs/ runs.

- ```python blocks are executed (blocks of one file share a namespace, in order);
- ```sh / ```console lines starting with ``symnet`` are run through ``symnet.cli.main``
  and must exit 0, unless the line ends with ``# exits N``;
- ``pip install`` lines are skipped (the test environment is already installed).
"""

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from symnet.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(path: Path, kinds: tuple[str, ...]):
    return [body for kind, body in FENCE.findall(path.read_text(encoding="utf-8")) if kind in kinds]


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_python_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for body in blocks(path, ("python",)):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(body, f"{path.name}", "exec"), namespace)  # our own documentation


#: External programs a documented command needs (beyond symnet itself), by its arguments.
NEEDS = {"--pdf": "pdflatex"}


def needs(argv: list[str]) -> list[str]:
    """The external programs ``symnet ARGV`` needs: pdflatex for ``--pdf``."""
    return sorted({tool for arg in argv for flag, tool in NEEDS.items()
                   if arg == flag or arg.startswith(flag + "=")})


def shell_commands(path: Path) -> list[tuple[str, list[str], int]]:
    """The documented ``symnet`` commands of ``path``: (command, argv, expected exit code)."""
    out = []
    for body in blocks(path, ("sh", "console", "bash", "shell")):
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ")
            expected = 0
            m = re.search(r"#\s*exits\s+(\d+)\s*$", line)
            if m:
                expected = int(m.group(1))
            line = line.split(" #")[0].strip()
            for command in line.split("&&"):
                command = command.strip()
                if command.startswith("symnet "):
                    out.append((command, shlex.split(command)[1:], expected))
    return out


def run_command(path: Path, command: str, argv: list[str], expected: int, tmp_path: Path) -> None:
    argv = [a.replace("OUT_DIR", str(tmp_path)) for a in argv]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    assert code == expected, f"{path.name}: `{command}` exited {code}"


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_shell_examples_run(path, tmp_path, monkeypatch):
    """Every documented command that needs no external program (those are tested below)."""
    monkeypatch.chdir(ROOT)
    for command, argv, expected in shell_commands(path):
        if not needs(argv):
            run_command(path, command, argv, expected, tmp_path)


TOOL_COMMANDS = [(path, command, argv, expected) for path in DOCS
                 for command, argv, expected in shell_commands(path) if needs(argv)]


@pytest.mark.parametrize("path, command, argv, expected", TOOL_COMMANDS,
                         ids=[f"{p.name}:{c}" for p, c, _, _ in TOOL_COMMANDS])
def test_shell_examples_needing_external_programs_run(path, command, argv, expected, tmp_path,
                                                      monkeypatch):
    """A documented ``--pdf`` command runs where pdflatex is installed, and skips, saying so, where not."""
    missing = [tool for tool in needs(argv) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"`{command}` needs {', '.join(missing)}, which is not installed "
                    "(Debian: texlive-latex-base texlive-latex-recommended)")
    monkeypatch.chdir(ROOT)
    run_command(path, command, argv, expected, tmp_path)


def test_no_documented_command_needs_an_unlisted_program():
    """Commands writing a PDF are the ones routed to the skipping test."""
    for path in DOCS:
        for command, argv, _ in shell_commands(path):
            if any(a.endswith(".pdf") for a in argv):
                assert needs(argv), f"{path.name}: `{command}` writes a PDF but is not marked as needing pdflatex"


def test_docs_exist():
    assert (ROOT / "README.md").is_file()
    assert len(DOCS) >= 2


@pytest.mark.parametrize("path", [p for p in DOCS if blocks(p, ("symnet",))],
                         ids=[p.name for p in DOCS if blocks(p, ("symnet",))])
def test_symnet_blocks_in_docs_check(path):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["check", str(path)]) == 0
