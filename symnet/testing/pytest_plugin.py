"""The symnet pytest plugin: readable failures, and derivation files as tests.

Registered through the ``pytest11`` entry point, so it is active wherever
symnet is installed.  It does two things.

* A test that fails with a :class:`symnet.testing.SymnetAssertionError` is
  reported as the place of the failing call and symnet's report (the failing
  step, the kernel's reason, the counterexample), without a traceback through
  symnet's internals.

* ``.deriv`` files named ``test_*.deriv`` or ``*_test.deriv`` are collected as
  tests, one test item per chain; a chain passes when every step is proved, and
  fails with the report ``symnet check`` prints.  The patterns are the ini
  option ``symnet_deriv_files`` (an empty value turns collection off); a
  ``.deriv`` file named on the command line is always collected.  The ``symnet``
  blocks of Markdown files (``symnet_markdown_files``, default ``*.md``) are
  collected only on request: ``--symnet-markdown`` or ``symnet_markdown = true``.

Options: ``--symnet-trials N`` / ``symnet_trials`` and ``--symnet-seed S`` /
``symnet_seed`` set the random instances of the kernel's numeric opinion.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import sys
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import ReprFileLocation, TerminalRepr

DEFAULT_DERIV_FILES = ["test_*.deriv", "*_test.deriv"]
DEFAULT_MARKDOWN_FILES = ["*.md", "*.markdown"]


# ---------------------------------------------------------------------------
# Options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("symnet", "symnet: derivation files and readable symnet failures")
    group.addoption("--symnet-markdown", action="store_true", default=False,
                    help="collect the ```symnet blocks of Markdown files as tests (one per chain)")
    group.addoption("--symnet-trials", type=int, default=None, metavar="N",
                    help="random instances per step for the kernel's numeric opinion (default 3)")
    group.addoption("--symnet-seed", type=int, default=None, metavar="S",
                    help="seed of those random instances (default 0)")
    parser.addini("symnet_deriv_files", type="args", default=list(DEFAULT_DERIV_FILES),
                  help="glob patterns of .deriv files collected as tests (default: test_*.deriv *_test.deriv)")
    parser.addini("symnet_markdown", type="bool", default=False,
                  help="collect the ```symnet blocks of Markdown files as tests")
    parser.addini("symnet_markdown_files", type="args", default=list(DEFAULT_MARKDOWN_FILES),
                  help="glob patterns of Markdown files searched when symnet_markdown is on (default: *.md)")
    parser.addini("symnet_trials", default="3", help="random instances per step (default 3)")
    parser.addini("symnet_seed", default="0", help="seed of the random instances (default 0)")


def _markdown_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("symnet_markdown", False) or config.getini("symnet_markdown"))


def _int_option(config: pytest.Config, name: str, default: int) -> int:
    value = config.getoption(name, None)
    if value is not None:
        return int(value)
    raw = str(config.getini(name) or "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise pytest.UsageError(f"{name} must be a whole number, got {raw!r}") from None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if config.getoption("verbose", 0) <= 0:
        return None
    patterns = config.getini("symnet_deriv_files")
    deriv = ", ".join(patterns) if patterns else "off"
    md = "on" if _markdown_enabled(config) else "off (--symnet-markdown)"
    return [f"symnet: .deriv tests: {deriv}; Markdown symnet blocks: {md}"]


# ---------------------------------------------------------------------------
# Collecting derivation files


def _matches(path: Path, patterns: list[str]) -> bool:
    posix = path.as_posix()
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatch(posix, pattern if pattern.startswith(("/", "*")) else "*/" + pattern):
                return True
        elif fnmatch.fnmatch(path.name, pattern):
            return True
    return False


def _is_initial_path(parent: Any, path: Path) -> bool:
    try:
        return bool(parent.session.isinitpath(path))
    except Exception:  # noqa: BLE001 - an older pytest: treat as not given
        return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    suffix = file_path.suffix.lower()
    if suffix not in (".deriv", ".md", ".markdown") or not file_path.is_file():  # no pipes, no devices
        return None
    config = parent.config
    if suffix == ".deriv":
        if _is_initial_path(parent, file_path) or _matches(file_path, config.getini("symnet_deriv_files")):
            return DerivFile.from_parent(parent, path=file_path)
        return None
    if suffix in (".md", ".markdown") and _markdown_enabled(config):
        if _matches(file_path, config.getini("symnet_markdown_files")) or _is_initial_path(parent, file_path):
            return DerivFile.from_parent(parent, path=file_path)
    return None


class DerivFailure(Exception):
    """A chain of a derivation file that is not fully proved (or a malformed file)."""

    def __init__(self, report: str, line: int | None):
        super().__init__(report)
        self.report, self.line = report, line


class DerivFile(pytest.File):
    """A ``.deriv`` file (or a Markdown file's ``symnet`` blocks): one item per chain."""

    @property
    def is_markdown(self) -> bool:
        return self.path.suffix.lower() in (".md", ".markdown")

    @property
    def shown_path(self) -> str:
        try:
            return self.path.relative_to(self.config.rootpath).as_posix()
        except ValueError:
            return str(self.path)

    def _text(self) -> str:
        from symnet.notes.deriv import MAX_FILE_CHARS, decode

        data = self.path.read_bytes()
        if len(data) > 4 * MAX_FILE_CHARS:
            from symnet.errors import SymnetError

            raise SymnetError(f"{self.shown_path}: file too large")
        return decode(data, self.shown_path)

    def collect(self):
        from symnet.errors import SymnetError
        from symnet.notes.checkfile import markdown_source
        from symnet.notes.deriv import parse

        self._result = None
        try:
            text = self._text()
            source = text
            if self.is_markdown:
                source, _, blocks = markdown_source(text, path=self.shown_path)
                if not blocks:
                    return
            parsed = parse(source, self.shown_path)
        except (SymnetError, OSError, RecursionError, MemoryError):
            # malformed: one item that fails with the error, as `symnet check` prints it
            yield DerivChainItem.from_parent(self, name="malformed", index=None, line=None, title="")
            return
        chains = parsed.chains
        if not chains:
            yield DerivChainItem.from_parent(self, name="no-steps", index=None, line=None, title="")
            return
        for index, chain in enumerate(chains):
            yield DerivChainItem.from_parent(self, name=f"line_{chain.line}", index=index,
                                             line=chain.line, title=chain.title)

    def checked(self):
        """The whole file checked by the kernel (once, on first use)."""
        if getattr(self, "_result", None) is None:
            from symnet.errors import SymnetError
            from symnet.notes.checkfile import FileResult, _error_result, check_text

            trials = _int_option(self.config, "symnet_trials", 3)
            seed = _int_option(self.config, "symnet_seed", 0)
            try:
                text = self._text()
                self._result = check_text(text, self.shown_path, markdown=self.is_markdown,
                                          trials=max(trials, 1), seed=seed)
            except SymnetError as exc:
                self._result = _error_result(self.shown_path, exc, [])
            except OSError as exc:
                self._result = FileResult(self.shown_path, error=f"cannot read {self.shown_path}: {exc}",
                                          error_message=str(exc))
        return self._result


class DerivChainItem(pytest.Item):
    """One chain ``lhs = e1 = e2 ...`` of a derivation file: passes iff every step is proved."""

    def __init__(self, *, index: int | None, line: int | None, title: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.index, self.line, self.title = index, line, title

    def runtest(self) -> None:
        from symnet.notes.checkfile import file_text

        result = self.parent.checked()
        if self.index is None:  # a malformed file, or one without chains
            if result.malformed:
                raise DerivFailure("\n".join(file_text(result)), result.error_line)
            if not result.steps:
                raise DerivFailure(f"{result.path}: no steps to check: nothing is proved", None)
            return
        chain = next((c for c in result.chains if c.line == self.line), None)
        if chain is None:  # the file turned out malformed before this chain was checked
            raise DerivFailure("\n".join(file_text(result)), result.error_line)
        if chain.verdict == "proved":
            return
        lines = file_text(dataclasses.replace(result, chains=[chain], error=None))[:-1]
        counts = {v: sum(1 for s in chain.steps if s.verdict == v) for v in ("refuted", "unproved", "proved")}
        parts = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        total = len(chain.steps)
        title = f" ({chain.title})" if chain.title else ""
        lines.append(f"{result.path}: chain at line {chain.line}{title}: {parts} (of {total} step{'s' * (total != 1)})")
        first_bad = next(s.line for s in chain.steps if s.verdict != "proved")
        raise DerivFailure("\n".join(lines), first_bad)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, DerivFailure):
            failure = excinfo.value
            return SymnetFailureRepr([], failure.report, self.parent.shown_path,
                                     failure.line or self.line or 0)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        if self.index is None:
            return self.path, 0, f"{self.parent.shown_path}"
        title = f": {self.title}" if self.title else ""
        return self.path, (self.line or 1) - 1, f"chain at line {self.line}{title}"


# ---------------------------------------------------------------------------
# Failure reports


class SymnetFailureRepr(TerminalRepr):
    """The place of the failing call (file, line, source) and symnet's report, unprefixed."""

    def __init__(self, frames: list[tuple[str, int, str, str]], report: str, path: str, line: int,
                 notes: tuple[str, ...] = (), label: str = ""):
        self.frames = frames  # (path, 1-based line, function name, source line)
        self.report = report
        self.notes = notes
        headline = report.split("\n", 1)[0]
        self.reprcrash = ReprFileLocation(path, line, f"{label}{headline}")

    def toterminal(self, tw) -> None:
        for path, line, name, source in self.frames:
            tw.line(f"{path}:{line}: in {name}")
            if source:
                tw.line(f"    {source}")
        if self.frames:
            tw.line("")
        lines = self.report.split("\n")
        tw.line(lines[0], red=True, bold=True)
        for text in lines[1:]:
            tw.line(text)
        for note in self.notes:
            tw.line(note)


def _symnet_assertion(exc: BaseException) -> bool:
    testing = sys.modules.get("symnet.testing")
    return testing is not None and isinstance(exc, testing.SymnetAssertionError)


def _user_frames(item: pytest.Item, excinfo: pytest.ExceptionInfo) -> list[tuple[str, int, str, str]]:
    try:
        tb = item._traceback_filter(excinfo)  # what pytest itself shows: from the test function on
    except Exception:  # noqa: BLE001 - a private API; fall back to hidden-frame filtering
        tb = excinfo.traceback
        try:
            tb = tb.filter(excinfo)
        except TypeError:
            tb = tb.filter()
    package = str(Path(__file__).resolve().parent)
    out = []
    for entry in tb:
        path = str(entry.path)
        if path.startswith(package):
            continue
        try:
            source = str(entry.statement).strip().split("\n")[0]
        except Exception:  # noqa: BLE001 - no source available
            source = ""
        try:
            shown = Path(path).resolve().relative_to(item.config.rootpath).as_posix()
        except ValueError:
            shown = path
        out.append((shown, entry.lineno + 1, entry.name, source))
    return out[-3:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    excinfo = call.excinfo
    if excinfo is None or isinstance(item, DerivChainItem) or not _symnet_assertion(excinfo.value):
        return
    report = outcome.get_result()
    if report.outcome != "failed" or item.config.getoption("tbstyle", "auto") not in ("auto", "long", "short"):
        return
    try:
        frames = _user_frames(item, excinfo)
        exc = excinfo.value
        path, line = (frames[-1][0], frames[-1][1]) if frames else (str(item.path), 0)
        notes = tuple(str(n) for n in getattr(exc, "__notes__", ()) or ())
        report.longrepr = SymnetFailureRepr(frames, exc.report, path, line, notes,
                                            label=f"{type(exc).__name__}: ")
    except Exception:  # noqa: BLE001 - never lose a failure over its presentation
        return
