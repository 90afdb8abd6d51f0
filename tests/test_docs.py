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


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_shell_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
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
                if not command.startswith("symnet "):
                    continue
                argv = shlex.split(command)[1:]
                argv = [a.replace("OUT_DIR", str(tmp_path)) for a in argv]
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    code = main(argv)
                assert code == expected, f"{path.name}: `{command}` exited {code}"


def test_docs_exist():
    assert (ROOT / "README.md").is_file()
    assert len(DOCS) >= 2


@pytest.mark.parametrize("path", [p for p in DOCS if blocks(p, ("symnet",))],
                         ids=[p.name for p in DOCS if blocks(p, ("symnet",))])
def test_symnet_blocks_in_docs_check(path):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["check", str(path)]) == 0
