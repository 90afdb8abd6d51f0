"""Checking derivation files and Markdown notes with the kernel, and reporting the results.

:func:`check_text` parses a ``.deriv`` file (or the ``symnet`` fenced blocks of a
Markdown file) with :mod:`symnet.notes.deriv` and asks the kernel about every step,
through :class:`~symnet.notes.derivation.ChainBuilder`: this module never decides a
step itself.  Results are plain data (:class:`FileResult`, :class:`Report`)
with three views: compiler-style text, JSON and LaTeX (optionally compiled to
PDF with ``pdflatex``).

A file is *malformed* when it cannot be read or parsed, or when an expression
is ill-formed (unknown name, shapes that do not fit, anything outside the
grammar): the whole file is then rejected before any step is checked, with
``FILE:LINE:COL`` of the problem.  Well-formed steps get the kernel's verdict:
``proved``, ``refuted`` (with a counterexample) or ``unproved``; a step whose
two sides are well formed but of different shapes is refuted.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from symnet.errors import ShapeError, SymnetError
from symnet.kernel import PROVED, REFUTED, UNPROVED, Check, Context
from symnet.kernel import terms as T
from symnet.kernel.terms import Term
from symnet.notes.deriv import MAX_FILE_CHARS, DerivError, DerivFile, decode, parse
from symnet.notes.derivation import Chain, ChainBuilder, Derivation, Step
from symnet.render.display import tex_text as _tex  # the one LaTeX text escaper

#: File name endings read as Markdown (their ``symnet`` fenced blocks are checked).
MARKDOWN_SUFFIXES = (".md", ".markdown")
#: File name ending of derivation files (used when a directory is given).
DERIV_SUFFIX = ".deriv"
#: Matrices in counterexamples are shown up to this many rows and columns.
SHOW_ENTRIES = 6

#: A line that would open a ``symnet`` fence (once container markers are gone).
_SYMNET_OPENER = re.compile(r"^[ \t]*(?:`{3,}(?=[ \t]*symnet(?:[ \t][^`]*)?$)|~{3,}(?=[ \t]*symnet(?:[ \t].*)?$))")
#: Blockquote markers, list markers and indentation in front of a line.
_CONTAINER_PREFIX = re.compile(r"^(?:[ \t]*(?:>|[-+*](?=[ \t])|[0-9]{1,9}[.)](?=[ \t])))*")
#: Block tokens that hold the lines of a document (everything else is a container).
_LEAF_BLOCKS = frozenset({"paragraph_open", "heading_open", "fence", "code_block", "html_block", "hr"})
_NEWLINE = re.compile(r"\r\n?|\n")


# ---------------------------------------------------------------------------
# Markdown


def markdown_lines(text: str) -> list[str]:
    """The lines of a Markdown text, split as a CommonMark parser splits them."""
    return _NEWLINE.split(text)


def _is_symnet(info: str) -> bool:
    words = info.split()
    return bool(words) and words[0] == "symnet"


def _blank_prefix(original: str, content: str) -> str:
    """``original`` with the part ``content`` lacks (container markers, indentation) made spaces."""
    if original.endswith(content):
        cut = len(original) - len(content)
    else:  # a tab in the prefix, partly expanded by the parser
        rest = content.lstrip(" \t")
        cut = len(original) - len(rest) if original.endswith(rest) else max(len(original) - len(content), 0)
    return " " * cut + original[cut:]


def markdown_source(text: str, path: str = "<string>") -> tuple[str, str, int]:
    """The ``symnet`` blocks of a Markdown text as one derivation source.

    The blocks are the ones a CommonMark renderer shows as code: every fenced
    code block (backticks or tildes) whose info string starts with the word
    ``symnet``, at any depth inside blockquotes and lists, and an unclosed one
    up to the end of its container.  Indented code blocks and fences inside
    other fences are code, not blocks.  A ``symnet`` fence inside an HTML
    comment or any other raw HTML block is hidden or not rendered as code, so
    it is an error (:class:`~symnet.notes.deriv.DerivError`), as is a ``symnet``
    fence nested too deeply for the parser.

    Lines outside ``symnet`` blocks become empty, and container prefixes
    (``>`` markers, list indentation) become spaces, so line numbers and
    columns refer to the Markdown file; declarations carry over between
    blocks.  Returns ``(source, title, number_of_blocks)``; the title is the
    text of the first heading (ATX or setext).
    """
    from markdown_it import MarkdownIt

    lines = markdown_lines(text)
    out = [""] * len(lines)
    title: str | None = None
    blocks = 0
    covered = [False] * len(lines)
    tokens = MarkdownIt("commonmark").parse(text)
    for i, token in enumerate(tokens):
        if token.type in _LEAF_BLOCKS and token.map:
            for n in range(token.map[0], min(token.map[1], len(lines))):
                covered[n] = True
        if token.type == "heading_open" and title is None:
            inline = tokens[i + 1] if i + 1 < len(tokens) else None
            title = inline.content.strip() if inline is not None and inline.type == "inline" else ""
        elif token.type == "fence" and _is_symnet(token.info) and token.map:
            blocks += 1
            first = token.map[0] + 1  # the line after the opening fence
            for k, content in enumerate(token.content.split("\n")[:-1]):
                n = first + k
                if n < len(lines):
                    out[n] = _blank_prefix(lines[n], content)
        elif token.type == "html_block" and token.map:
            comment = token.content.lstrip().startswith("<!--")
            for k, content in enumerate(token.content.split("\n")):
                if _SYMNET_OPENER.match(content):
                    n = token.map[0] + k
                    raise DerivError(path, n + 1, _marker_col(lines, n), _HTML_MESSAGE[comment])
    for n, line in enumerate(lines):  # content the parser dropped (nested too deeply) but a renderer may show
        if not covered[n] and _SYMNET_OPENER.match(line[_CONTAINER_PREFIX.match(line).end():]):
            raise DerivError(path, n + 1, _marker_col(lines, n),
                             "this symnet block is nested too deeply in blockquotes or lists to be read "
                             "as the note is rendered; move it out of some of them")
    return "\n".join(out), title or "", blocks


_HTML_MESSAGE = {
    True: "a symnet block inside an HTML comment is hidden when the note is rendered; "
          "remove the comment or the block",
    False: "a symnet block inside a raw HTML block is not rendered as code, so it is not checked; "
           "put a blank line between the HTML and the block, or remove the block",
}


def _marker_col(lines: list[str], n: int) -> int:
    line = lines[n] if n < len(lines) else ""
    cols = [c for c in (line.find("```"), line.find("~~~")) if c >= 0]
    return min(cols) + 1 if cols else 1


def is_markdown(path: str) -> bool:
    return path.lower().endswith(MARKDOWN_SUFFIXES)


# ---------------------------------------------------------------------------
# Results: plain data, so that they cross process boundaries and serialise


@dataclass
class StepResult:
    """One checked step: ``line``/``col`` locate its ``=``; ``start``/``end`` its expression."""

    line: int
    col: int
    start: int
    end: int
    expr: str
    reason: str
    verdict: str
    detail: str = ""
    counterexample: dict | None = None
    trials: int = 0
    conditions: tuple = ()

    @property
    def ok(self) -> bool:
        return self.verdict == PROVED

    @property
    def shown(self) -> str:
        """The verdict as a reader sees it, with its side conditions: ``proved, for u != 0``."""
        if self.verdict == PROVED and self.conditions:
            return "proved, for " + ", ".join(self.conditions)
        return self.verdict

    def to_dict(self) -> dict:
        return {
            "line": self.line,
            "col": self.col,
            "expr": self.expr,
            "verdict": self.verdict,
            "reason": self.reason,
            "detail": self.detail,
            "trials": self.trials,
            "conditions": list(self.conditions),
            "counterexample": _json_safe(self.counterexample),
        }


@dataclass
class ChainResult:
    """A checked chain: the expression on ``line`` and its steps."""

    line: int
    col: int
    lhs: str
    title: str
    steps: list[StepResult]

    @property
    def verdict(self) -> str:
        verdicts = [s.verdict for s in self.steps]
        if REFUTED in verdicts:
            return REFUTED
        return UNPROVED if UNPROVED in verdicts or not verdicts else PROVED

    def to_dict(self) -> dict:
        return {
            "line": self.line,
            "col": self.col,
            "lhs": self.lhs,
            "title": self.title,
            "verdict": self.verdict,
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass
class FileResult:
    """The outcome for one file: its chains, or the error that made it malformed.

    ``derivation`` holds the chains as the kernel checked them; ``shown`` holds
    the same steps and verdicts with ``diff(...)`` kept as ``d/dz`` for printing.
    Both are ``None`` for results computed in another process (``-j``).
    """

    path: str
    chains: list[ChainResult] = field(default_factory=list)
    error: str | None = None
    error_line: int | None = None
    error_col: int | None = None
    error_end_col: int | None = None
    error_message: str = ""
    title: str = ""
    lines: list[str] = field(default_factory=list)
    latex: str = ""
    derivation: Derivation | None = field(default=None, compare=False, repr=False)
    shown: Derivation | None = field(default=None, compare=False, repr=False)

    @property
    def steps(self) -> list[StepResult]:
        return [s for c in self.chains for s in c.steps]

    @property
    def malformed(self) -> bool:
        return self.error is not None

    @property
    def ok(self) -> bool:
        return self.error is None and all(s.ok for s in self.steps)

    def counts(self) -> dict[str, int]:
        out = {PROVED: 0, REFUTED: 0, UNPROVED: 0}
        for s in self.steps:
            out[s.verdict] = out.get(s.verdict, 0) + 1
        return out

    def to_dict(self) -> dict:
        d = {
            "path": self.path,
            "ok": self.ok,
            "title": self.title,
            "counts": self.counts(),
            "chains": [c.to_dict() for c in self.chains],
        }
        if self.error is not None:
            d["error"] = self.error
            d["error_line"] = self.error_line
            d["error_col"] = self.error_col
            d["error_message"] = self.error_message
        return d

    def __repr__(self) -> str:
        from symnet.render.display import file_repr

        return file_repr(self)

    def _repr_html_(self) -> str:
        from symnet.render.display import file_html

        return file_html(self)

    def _repr_markdown_(self) -> str:
        from symnet.render.display import file_markdown

        return file_markdown(self)

    def _repr_latex_(self) -> str:
        from symnet.render.display import file_repr_latex

        return file_repr_latex(self)

    def to_markdown(self) -> str:
        from symnet.render.display import file_markdown

        return file_markdown(self)

    def source_line(self, line: int | None) -> str:
        if line is None or not 1 <= line <= len(self.lines):
            return ""
        return self.lines[line - 1]


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (int, str, bool)):
        return obj
    try:
        return float(obj)
    except (TypeError, ValueError):
        return str(obj)


# ---------------------------------------------------------------------------
# Checking


def _error_result(path: str, error: SymnetError, lines: list[str], title: str = "") -> FileResult:
    if isinstance(error, DerivError):
        return FileResult(path, error=str(error), error_line=error.line, error_col=error.col,
                          error_end_col=error.end_col, error_message=error.message,
                          title=title, lines=lines)
    return FileResult(path, error=str(error), error_message=str(error), title=title, lines=lines)


def check_parsed(parsed: DerivFile, trials: int = 3, seed: int = 0) -> FileResult:
    """Ask the kernel about every step of a parsed file, definitions first, in file order."""
    ctx = Context(trials=trials, seed=seed)
    chains: list[ChainResult] = []
    built: list[Chain] = []
    shown: list[Chain] = []
    definitions = {d.symbol: d.expr for d in parsed.definitions}
    result = FileResult(parsed.path, chains=chains, title=parsed.title, lines=parsed.lines)
    for item in parsed.items:
        if not hasattr(item, "steps"):  # a Definition
            try:
                ctx.define(item.symbol, item.expr)
            except Exception as exc:  # the kernel refused it: the file is malformed here
                err = DerivError(parsed.path, item.line, item.col,
                                 f"the kernel rejected this definition: {exc}")
                bad = _error_result(parsed.path, err, parsed.lines, parsed.title)
                bad.chains = chains
                return bad
            continue
        builder = ChainBuilder(ctx, item.lhs, title=item.title)
        steps: list[StepResult] = []
        for spec in item.steps:
            try:
                step = builder.step(spec.expr, spec.reason)
            except ShapeError as exc:  # ill-formed after all: malformed, at this step
                err = DerivError(parsed.path, spec.line, spec.start, str(exc), spec.end)
                bad = _error_result(parsed.path, err, parsed.lines, parsed.title)
                bad.chains = chains
                return bad
            except Exception as exc:  # a kernel defect: never a verdict other than unproved
                detail = f"the kernel could not check this step ({type(exc).__name__}: {exc})"
                step = Step(spec.expr, spec.reason, Check(UNPROVED, detail))
                builder.steps.append(step)
            check = step.check
            counter = check.counterexample
            if counter is not None:
                counter = _relevant(counter, [builder.steps[-2].expr if len(builder.steps) > 1 else item.lhs,
                                              spec.expr], definitions)
            steps.append(StepResult(
                line=spec.line, col=spec.col, start=spec.start, end=spec.end, expr=spec.text,
                reason=spec.reason, verdict=check.verdict, detail=check.detail,
                counterexample=counter, trials=check.numeric.trials, conditions=check.conditions,
            ))
        chains.append(ChainResult(item.line, item.col, item.text, item.title, steps))
        chain = builder.build()
        built.append(chain)
        # the same verdicts, with diff(...) shown as d/dz instead of its value
        shown.append(Chain(item.display if item.display is not None else item.lhs,
                           tuple(Step(spec.display if spec.display is not None else spec.expr, s.reason, s.check)
                                 for spec, s in zip(item.steps, chain.steps)),
                           chain.title))
    title = parsed.title or parsed.path
    result.derivation = Derivation(title, tuple(built))
    result.shown = Derivation(title, tuple(shown))
    try:
        result.latex = derivation_block(result) if built else ""
    except Exception as exc:  # printing must not lose the verdicts
        result.latex = "\\begin{verbatim}\n" + f"(cannot typeset: {exc})" + "\n\\end{verbatim}"
    return result


def _relevant(counter: dict, exprs: list, definitions: dict) -> dict:
    """The counterexample with only the values of symbols the step depends on."""
    names: set[str] = set()
    stack, seen = list(exprs), set()
    while stack:
        e = stack.pop()
        if not isinstance(e, Term) or e in seen:
            continue
        seen.add(e)
        for s in T.symbols(e):
            names.add(s.value)
            if s in definitions:
                stack.append(definitions[s])
    values = counter.get("values")
    if not isinstance(values, dict):
        return counter
    return dict(counter, values={k: v for k, v in values.items() if k in names})


def check_text(text: str, path: str = "<string>", markdown: bool | None = None,
               trials: int = 3, seed: int = 0) -> FileResult:
    """Parse and check a derivation file's text (a Markdown text if ``markdown``)."""
    if markdown is None:
        markdown = is_markdown(path)
    lines = markdown_lines(text) if markdown else text.replace("\r\n", "\n").split("\n")
    title = ""
    source = text
    try:
        if markdown:
            source, title, _ = markdown_source(text, path=path)
        parsed = parse(source, path)
    except SymnetError as exc:
        return _error_result(path, exc, lines, title)
    if markdown and title:
        parsed.title = title
    parsed.lines = lines
    return check_parsed(parsed, trials=trials, seed=seed)


def check_file(path: str, trials: int = 3, seed: int = 0) -> FileResult:
    """Read and check one file; unreadable or malformed files give a result with ``error``."""
    try:
        if os.path.isdir(path):
            raise SymnetError(f"{path}: is a directory")
        if os.path.exists(path) and not os.path.isfile(path):
            raise SymnetError(f"{path}: not a regular file")  # a pipe or device would block
        with open(path, "rb") as handle:
            data = handle.read(4 * MAX_FILE_CHARS + 1)
        if len(data) > 4 * MAX_FILE_CHARS:
            raise SymnetError(f"{path}: file too large")
        text = decode(data, path)
    except SymnetError as exc:
        return _error_result(path, exc, [])
    except OSError as exc:
        return _error_result(path, SymnetError(f"cannot read {path}: {exc.strerror or exc}"), [])
    try:
        return check_text(text, path, trials=trials, seed=seed)
    except SymnetError as exc:
        return _error_result(path, exc, text.split("\n"))
    except (RecursionError, MemoryError) as exc:
        return _error_result(path, SymnetError(f"{path}: input too large or too deeply nested ({type(exc).__name__})"),
                             text.split("\n"))


def _worker(job: tuple[str, int, int]) -> FileResult:
    path, trials, seed = job
    result = check_file(path, trials=trials, seed=seed)
    result.derivation = result.shown = None  # SymPy objects stay in the worker; the rest is plain data
    return result


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files to check: files as given; directories searched for ``.deriv`` and Markdown with ``symnet`` blocks."""
    out: list[str] = []
    for p in paths:
        if not os.path.isdir(p):
            out.append(p)
            continue
        found = []
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                full = os.path.join(root, name)
                if name.endswith(DERIV_SUFFIX):
                    found.append(full)
                elif is_markdown(name) and _has_symnet_block(full):
                    found.append(full)
        out.extend(found if found else [p])  # an empty directory is reported as an error
    return out


def _has_symnet_block(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return markdown_source(handle.read(4 * MAX_FILE_CHARS), path=path)[2] > 0
    except DerivError:  # a hidden symnet block: checked, so that the error is reported
        return True
    except (OSError, RecursionError, MemoryError):
        return False


@dataclass
class Report:
    """The results for several files; ``exit_code`` is 0 all proved, 1 some step not proved, 2 malformed."""

    files: list[FileResult]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def exit_code(self) -> int:
        if any(f.malformed for f in self.files):
            return 2
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {"ok": self.ok, "files": [f.to_dict() for f in self.files]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self, verbose: bool = False) -> str:
        return report_text(self, verbose=verbose)

    def to_latex(self, standalone: bool = True) -> str:
        return report_latex(self, standalone=standalone)

    def to_markdown(self) -> str:
        return report_markdown(self)


def check_paths(paths: Iterable[str], jobs: int = 1, trials: int = 3, seed: int = 0) -> Report:
    """Check files (directories are searched), ``jobs`` processes at a time."""
    files = expand_paths(paths)
    if jobs <= 0:
        jobs = os.cpu_count() or 1
    if jobs == 1 or len(files) <= 1:
        return Report([check_file(p, trials=trials, seed=seed) for p in files])
    jobs_list = [(p, trials, seed) for p in files]
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(files))) as pool:
            results = list(pool.map(_worker, jobs_list))
    except Exception:  # the pool itself failed (no fork, a worker killed): check here instead
        results = [check_file(p, trials=trials, seed=seed) for p in files]
    return Report(results)


# ---------------------------------------------------------------------------
# Text: like a compiler, pointing at the line


def _marker(line: str, col: int, end: int | None) -> str:
    """A caret under column ``col`` (1-based) and ``~`` up to ``end`` (exclusive)."""
    col = max(1, min(col, len(line) + 1))
    pad = "".join(ch if ch == "\t" else " " for ch in line[: col - 1])
    width = max(1, (end - col) if end and end > col else 1)
    return pad + "^" + "~" * (width - 1)


def _excerpt(result: FileResult, line: int | None, col: int | None, end: int | None) -> list[str]:
    text = result.source_line(line)
    if not text and line is None:
        return []
    gutter = len(str(line))
    return [f"  {line:>{gutter}} | {text}", f"  {' ' * gutter} | {_marker(text, col or 1, end)}"]


def _number(v: Any) -> str:
    if isinstance(v, (int, float)):
        return f"{v:.4g}"
    return str(v)


def format_value(v: Any) -> str:
    """A number or a (nested) list of numbers, compactly; large matrices are elided."""
    if isinstance(v, list):
        if v and isinstance(v[0], list):
            rows = [_row(r) for r in v[:SHOW_ENTRIES]]
            if len(v) > SHOW_ENTRIES:
                rows.append(f"... ({len(v)} rows)")
            return "[" + ", ".join(rows) + "]"
        return _row(v)
    return _number(v)


def _row(r: list) -> str:
    cells = [_number(x) for x in r[:SHOW_ENTRIES]]
    if len(r) > SHOW_ENTRIES:
        cells.append(f"... ({len(r)} columns)")
    return "[" + ", ".join(cells) + "]"


def counterexample_lines(ce: dict, indent: str = "    ") -> list[str]:
    """The instance on which a step fails: values, dimensions, both sides, the difference."""
    out = [f"{indent}counterexample:"]
    dims = ce.get("dims") or {}
    if dims:
        out.append(indent + "  dims: " + ", ".join(f"{k} = {v}" for k, v in dims.items()))
    values = ce.get("values") or {}
    width = max([len(k) for k in values] + [10])
    for name, value in values.items():
        out.append(f"{indent}  {name:<{width}} = {format_value(value)}")
    if "lhs" in ce:
        out.append(f"{indent}  {'left side':<{width}} = {format_value(ce['lhs'])}")
    if "rhs" in ce:
        out.append(f"{indent}  {'right side':<{width}} = {format_value(ce['rhs'])}")
    if ce.get("difference") is not None:
        out.append(f"{indent}  largest difference: {_number(ce['difference'])}")
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def file_text(result: FileResult, verbose: bool = False) -> list[str]:
    """The text report of one file."""
    out: list[str] = []
    if result.malformed:
        if result.error_line is not None:
            out.append(f"{result.path}:{result.error_line}:{result.error_col}: error: {result.error_message}")
            out += _excerpt(result, result.error_line, result.error_col, result.error_end_col)
        else:
            out.append(f"{result.error}")
        out.append(f"{result.path}: malformed, not checked")
        return out
    previous_line = None
    for chain in result.chains:
        previous_line = chain.line
        for step in chain.steps:
            loc = f"{result.path}:{step.line}"
            if step.verdict != PROVED:
                out.append(f"{loc}: step {step.verdict}: {step.detail or 'no reason given'}")
                out += _excerpt(result, step.line, step.start, step.end)
                if step.line != previous_line:
                    out.append(f"    (checked against the expression on line {previous_line})")
                if step.counterexample:
                    out += counterexample_lines(step.counterexample)
            elif verbose or step.conditions:
                tail = f"  ({step.reason})" if step.reason else ""
                out.append(f"{loc}: step {step.shown}{tail}")
            previous_line = step.line
    counts = result.counts()
    total = sum(counts.values())
    if total == 0:
        out.append(f"{result.path}: no steps to check")
    elif counts[PROVED] == total:
        out.append(f"{result.path}: all {_plural(total, 'step')} proved")
    else:
        parts = ", ".join(f"{counts[v]} {v}" for v in (REFUTED, UNPROVED, PROVED) if counts[v])
        out.append(f"{result.path}: {parts} (of {_plural(total, 'step')})")
    return out


def report_text(report: Report, verbose: bool = False) -> str:
    """Compiler-style text for all files, then one summary line."""
    out: list[str] = []
    for result in report.files:
        out += file_text(result, verbose)
    steps = [s for f in report.files for s in f.steps]
    bad_files = sum(1 for f in report.files if f.malformed)
    not_proved = sum(1 for s in steps if not s.ok)
    summary = f"checked {_plural(len(report.files), 'file')}, {_plural(len(steps), 'step')}: "
    if report.ok:
        summary += "all proved"
    else:
        parts = []
        if not_proved:
            parts.append(f"{not_proved} not proved")
        if bad_files:
            parts.append(f"{bad_files} malformed file{'s' if bad_files != 1 else ''}")
        summary += ", ".join(parts)
    out.append(summary)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# LaTeX and PDF


def derivation_block(result: FileResult) -> str:
    """The checked chains of a file as ``align*`` blocks: a verdict mark on every step, reasons
    with their math typeset as math, side conditions, counterexamples of refuted steps, and the
    ``where`` line kept on the page of its chain."""
    from symnet.render.display import file_chain_latex, symbol_names

    shown = result.shown
    if shown is None or not shown.chains:
        return ""
    names = symbol_names(shown)
    blocks = []
    for k in range(min(len(shown.chains), len(result.chains))):
        rows = file_chain_latex(result, k, names)
        body = ""
        for i, row in enumerate(rows):
            if i:
                # no page break inside a title line, before a note, a counterexample or the where line
                keep = i == 1 and bool(result.chains[k].title) or row.startswith(r"&\qquad")
                body += (" \\\\*\n" if keep else " \\\\\n")
            body += row
        blocks.append("\\begin{align*}\n" + body + "\n\\end{align*}")
    return "\n".join(blocks)


def file_latex(result: FileResult) -> str:
    """A section for one file: its chains as ``align*`` blocks, or its error."""
    from symnet.render.display import counterexample_latex, latex_mark

    title = result.title or os.path.basename(result.path)
    out = [f"\\section*{{{_tex(title)}}}", f"\\noindent\\texttt{{{_tex(result.path)}}}\\par"]
    if result.malformed:
        out.append(f"\\noindent\\textbf{{Malformed:}} \\texttt{{{_tex(result.error or '')}}}\\par")
        return "\n".join(out)
    if result.latex:
        out.append(result.latex)
    counts = result.counts()
    total = sum(counts.values())
    if total and counts[PROVED] == total:
        head = "The only step" if total == 1 else f"All {total} steps"
        out.append(f"\\noindent $\\checkmark$ {head} proved by the symnet kernel.\\par")
    elif total:
        out.append("\\noindent " + _tex(", ".join(f"{counts[v]} {v}" for v in (REFUTED, UNPROVED, PROVED)
                                                   if counts[v]))
                   + f" (of {_plural(total, 'step')}).\\par")
        out.append("\\begin{itemize}")
        for s in result.steps:
            if not s.ok:
                item = (f"\\item[${latex_mark(s.verdict)}$] line {s.line}: \\textbf{{{s.verdict}}}"
                        + (f" --- {_tex(s.detail)}" if s.detail else ""))
                if s.counterexample and s.verdict == REFUTED and not result.latex:
                    item += ("\\\\\nCounterexample: $" + counterexample_latex(s.counterexample) + "$")
                out.append(item)
        out.append("\\end{itemize}")
    return "\n".join(out)


_PREAMBLE = (
    "\\documentclass{article}\n"
    "\\usepackage{amsmath,amssymb,bm}\n"
    "\\usepackage[margin=2cm]{geometry}\n"
    "\\allowdisplaybreaks\n"
)


def report_latex(report: Report, standalone: bool = True) -> str:
    """A section per file; ``standalone`` makes it a whole document (what ``--latex``/``--pdf``
    write), else a fragment to ``\\input`` (``check --format latex``, like ``collapse`` and ``grad``)."""
    body = "\n\n".join(file_latex(f) for f in report.files)
    if not standalone:
        return body + "\n"
    return _PREAMBLE + "\\begin{document}\n" + f"{body}\n" + "\\end{document}\n"


def report_markdown(report: Report) -> str:
    """Markdown: a section per file (``$$\\begin{aligned}...`` math, marks), then the summary line."""
    from symnet.render.display import file_markdown

    parts = [file_markdown(f) for f in report.files]
    summary = report_text(report).rstrip("\n").splitlines()[-1]
    return "\n".join(parts) + f"\n**{summary}**\n"


def compile_pdf(latex: str, out_path: str, timeout: float = 120.0) -> None:
    """Compile a LaTeX document to ``out_path`` with ``pdflatex`` (a SymnetError if that fails)."""
    exe = shutil.which("pdflatex")
    if exe is None:
        raise SymnetError(
            "--pdf needs pdflatex on PATH (Debian: apt-get install texlive-latex-base "
            "texlive-latex-recommended); --latex OUT.tex writes the source instead"
        )
    with tempfile.TemporaryDirectory(prefix="symnet-pdf-") as tmp:
        tex = os.path.join(tmp, "report.tex")
        with open(tex, "w", encoding="utf-8") as handle:
            handle.write(latex)
        try:
            proc = subprocess.run(
                [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "report.tex"],
                cwd=tmp, capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise SymnetError(f"pdflatex took longer than {timeout:.0f} s") from None
        pdf = os.path.join(tmp, "report.pdf")
        if proc.returncode != 0 or not os.path.exists(pdf):
            log = (proc.stdout or "") + (proc.stderr or "")
            errors = [ln for ln in log.splitlines() if ln.startswith("!")]
            hint = errors[0] if errors else log.strip().splitlines()[-1:] or ["no output"]
            raise SymnetError(f"pdflatex failed: {hint if isinstance(hint, str) else hint[0]}")
        try:
            shutil.copyfile(pdf, out_path)
        except OSError as exc:
            raise SymnetError(f"cannot write {out_path}: {exc.strerror or exc}") from None


__all__ = [
    "ChainResult",
    "FileResult",
    "Report",
    "StepResult",
    "check_file",
    "check_parsed",
    "check_paths",
    "check_text",
    "compile_pdf",
    "counterexample_lines",
    "expand_paths",
    "markdown_source",
    "report_latex",
    "report_markdown",
    "report_text",
]
