"""The proof library: one checked section per claim, checked and typeset together.

A proofs directory holds two kinds of proof file, each about one claim
(C1-C14; the document lists them in its summary table):

* ``NAME.deriv`` - a derivation file (:mod:`symnet.notes.deriv`), checked step by step
  by the kernel through :mod:`symnet.notes.checkfile`.  A header of comment lines
  says what it proves::

      # claim: C1
      # title: Three identity layers collapse to one affine map
      # statement: With identity activations a stack of layers computes
      #   x W' + b'.            (lines indented after '#' continue a field)
      # show: Wc as W'        (typeset the matrix Wc as W'; a view only)

* ``NAME.py`` - a Python module exposing ``CLAIM``, ``TITLE``, ``STATEMENT`` and
  ``run() -> Section``.  ``run`` builds what the claim needs with the symnet API
  and records it in a :class:`Section`: checked derivations (the kernel's
  verdicts), exact SymPy computations, numeric evidence (tables, always
  labelled as evidence), figures and prose.

:func:`check_directory` runs every proof file and gathers the parts of each
claim into a :class:`Report`, whose views are text, JSON and one LaTeX
document (:meth:`Report.to_latex`, compiled by :func:`compile_pdf`).  Nothing
here decides a step: derivations are decided by :mod:`symnet.kernel`; this
module only records what the proofs found and prints it.

Kinds of item, as the document labels them:

* ``kernel``  - a derivation every step of which the symnet kernel proved;
* ``exact``   - an exact SymPy computation (a limit, a determinant, exact
  rational arithmetic on finitely many cases);
* ``numeric`` - numeric evidence (seeded; never called a proof);
* ``info``    - prose, figures and tables that claim nothing.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symnet.errors import SymnetError
from symnet.render.display import tex_text as tex_escape  # the one LaTeX text escaper

KERNEL, EXACT, NUMERIC, INFO = "kernel", "exact", "numeric", "info"
KINDS = (KERNEL, EXACT, NUMERIC, INFO)
KIND_LABELS = {
    KERNEL: "proved by the symnet kernel",
    EXACT: "exact SymPy computation",
    NUMERIC: "numeric evidence",
    INFO: "",
}

#: The claims (C1-C14), and the ones the library must cover.
CLAIMS = tuple(f"C{i}" for i in range(1, 15))
REQUIRED = tuple(f"C{i}" for i in range(1, 14))

_CLAIM_ID = re.compile(r"^C([1-9][0-9]?)$")


def claim_number(claim: str) -> int:
    """``"C7" -> 7``; a SymnetError for anything else."""
    m = _CLAIM_ID.match(claim or "")
    if not m:
        raise SymnetError(f"{claim!r} is not a claim id such as C7")
    return int(m.group(1))


def parse_claims(text: str) -> tuple[str, ...]:
    """``"C1-C13"`` or ``"C1,C5,C9"`` (or a mix) -> the claim ids, in order."""
    out: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        lo, dash, hi = piece.partition("-")
        if dash:
            a, b = claim_number(lo.strip().upper()), claim_number(hi.strip().upper())
            if a > b:
                raise SymnetError(f"empty claim range {piece!r}")
            out += [f"C{i}" for i in range(a, b + 1)]
        else:
            out.append(f"C{claim_number(piece.upper())}")
    return tuple(dict.fromkeys(out))


# ---------------------------------------------------------------------------
# Markup: plain text in which $...$ is LaTeX math



_NETWORK_CODE = re.compile(r"Network\.dense\(\s*\[([^\]]*)\]\s*(?:,\s*(\[[^\]]*\]|'[^']*'|\"[^\"]*\"|[A-Za-z_]+)\s*)?\)")


def network_words(text: str) -> str:
    """``Network.dense([2, 2, 1], [step, step])`` in prose -> ``the 2-2-1 network with step activations``:
    the document describes networks in words, not Python."""

    def words(m: re.Match) -> str:
        widths = "-".join(w.strip().strip("'\"") for w in m.group(1).split(",") if w.strip())
        acts_text = (m.group(2) or "identity").strip("[]")
        acts = [a.strip().strip("'\"") for a in acts_text.split(",") if a.strip()]
        if not acts or len(set(acts)) == 1:
            what = f"{acts[0] if acts else 'identity'} activations"
        else:
            what = "activations " + ", ".join(acts)
        return f"the {widths} dense network with {what}"

    return _NETWORK_CODE.sub(words, text)


def markup_latex(text: str) -> str:
    """Markup -> LaTeX: text escaped, ``$...$`` passed through as math (Python code
    ``Network.dense(...)`` described in words)."""
    text = network_words(text)
    parts = re.split(r"(\$[^$]*\$)", text)
    return "".join(p if len(p) > 1 and p.startswith("$") and p.endswith("$") else tex_escape(p)
                   for p in parts)


_MATH_TEXT = [
    (r"\mathbf", ""), (r"\boldsymbol", ""), (r"\operatorname", ""), (r"\mathrm", ""),
    (r"\left", ""), (r"\right", ""), (r"\quad", " "), (r"\qquad", " "), (r"\,", " "),
    (r"\cdot", "*"), (r"\times", "x"), (r"\top", "T"), (r"\odot", "(.)"), (r"\le", "<="),
    (r"\ge", ">="), (r"\ne", "!="), (r"\to", "->"), (r"\infty", "oo"), (r"\in", " in "),
    (r"\sigma", "sigma"), (r"\tanh", "tanh"), (r"\lambda", "lambda"), (r"\delta", "delta"),
    (r"\mid", "|"), (r"\sum", "sum"), (r"\lim", "lim"), (r"\pm", "+-"), (r"\ldots", "..."),
]


def markup_text(text: str) -> str:
    """Markup -> plain text: math kept, a few LaTeX commands simplified."""

    def plain(math_part: str) -> str:
        s = math_part[1:-1]
        for a, b in _MATH_TEXT:
            s = s.replace(a, b)
        s = re.sub(r"\\(?:frac)\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", s)
        s = s.replace("{", "").replace("}", "").replace("\\", "")
        return re.sub(r"\s+", " ", s).strip()

    parts = re.split(r"(\$[^$]*\$)", text)
    return "".join(plain(p) if len(p) > 1 and p.startswith("$") and p.endswith("$") else p
                   for p in parts)


def sci(x: float, digits: int = 3) -> str:
    """A number as markup: ``$1.23 \\times 10^{-4}$`` (plain for moderate magnitudes)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "$\\infty$" if x > 0 else "$-\\infty$"
    if x == 0:
        return "$0$"
    e = int(math.floor(math.log10(abs(x))))
    if -3 <= e <= 4:
        s = f"{x:.{digits}g}"
        return f"${s}$"
    m = x / 10**e
    return f"${m:.{max(digits - 1, 0)}f} \\times 10^{{{e}}}$"


# ---------------------------------------------------------------------------
# Items and sections (what proof modules build)


@dataclass(frozen=True)
class Item:
    """One piece of a section, already rendered: plain data (it crosses processes)."""

    kind: str
    ok: bool
    text: str  # plain-text summary (what ``symnet proofs check -v`` prints)
    latex: str  # the LaTeX of this piece in the document
    detail: str = ""  # why it failed, when it did
    steps: int = 0  # steps in it that the kernel proved

    def to_dict(self) -> dict:
        return {"kind": self.kind, "ok": self.ok, "text": self.text, "detail": self.detail,
                "steps": self.steps}


class Section:
    """What a Python proof records for its claim.

    Build it in ``run()``: ``s = Section(CLAIM, TITLE, STATEMENT)``, then add
    derivations (:meth:`derivation`, :meth:`prove`), exact facts
    (:meth:`fact`), evidence tables (:meth:`table`), figures (:meth:`figure`)
    and prose (:meth:`text`), and return it.  ``ok`` is true when every item
    holds.  Text arguments are markup: plain text with ``$...$`` math.
    """

    def __init__(self, claim: str, title: str, statement: str):
        claim_number(claim)
        self.claim, self.title, self.statement = claim, title, statement
        self.items: list[Item] = []

    @property
    def ok(self) -> bool:
        """Every item holds, and at least one is a derivation, a fact or evidence."""
        return all(i.ok for i in self.items) and any(i.kind != INFO for i in self.items)

    # -- prose and structure ------------------------------------------------------
    def text(self, text: str) -> None:
        """A paragraph of markup."""
        self.items.append(Item(INFO, True, markup_text(text), "\\par " + markup_latex(text) + "\\par"))

    def heading(self, text: str) -> None:
        """A run-in heading inside the section."""
        self.items.append(Item(INFO, True, markup_text(text),
                               "\\subsection*{" + markup_latex(text) + "}"))

    # -- kernel-checked derivations ---------------------------------------------
    def derivation(self, derivation: Any, caption: str | None = None,
                   show: dict[str, str] | None = None) -> bool:
        """A :class:`~symnet.notes.derivation.Derivation` decided by the kernel; returns its ``ok``.

        Every step must be proved for the claim to hold.  ``caption`` None prints the
        derivation's title; ``show`` renames matrices in the printed view only.
        """
        item = derivation_item(derivation, caption, show)
        self.items.append(item)
        return item.ok

    def prove(self, caption: str, lhs: Any, steps: Sequence[tuple], context: Any = None,
              title: str = "", notes: Sequence[str] = (), where: Sequence[tuple] = ()) -> Any:
        """Build and record a one-chain derivation ``lhs = e1 = e2 ...``.

        ``steps`` are ``(expr, reason)`` or ``(expr, reason, uses)``; every step is
        decided by the kernel in ``context`` (a fresh :class:`~symnet.kernel.Context`
        when None).  ``where`` lists ``(symbol, expression)`` definitions to print
        under the chain.  Returns the :class:`~symnet.notes.derivation.Derivation`.
        """
        from symnet.kernel import Context
        from symnet.notes.derivation import ChainBuilder, Derivation

        ctx = context if context is not None else Context()
        builder = ChainBuilder(ctx, lhs, title=title)
        for step in steps:
            expr, reason, *rest = step
            builder.step(expr, reason, rest[0] if rest else None)
        builder.where.extend(where)
        d = Derivation(caption, (builder.build(),), tuple(notes))
        self.derivation(d, caption)
        return d

    def check(self, statement: str, check: Any) -> bool:
        """A single kernel verdict (a :class:`~symnet.kernel.Check`) stated in words."""
        from symnet.kernel import Check

        if not isinstance(check, Check):
            raise TypeError("Section.check needs the kernel's Check")
        return self._fact(statement, check.ok, KERNEL, check.detail, steps=int(check.ok))

    # -- facts, tables, figures -------------------------------------------------
    def fact(self, statement: str, holds: bool, kind: str = EXACT, detail: str = "") -> bool:
        """A single fact decided by the proof's own code: ``kind`` is ``EXACT`` (an exact
        SymPy computation) or ``NUMERIC``.  Kernel verdicts go through :meth:`check`."""
        if kind not in (EXACT, NUMERIC):
            raise ValueError(f"a fact is {EXACT!r} or {NUMERIC!r}; kernel verdicts use Section.check")
        return self._fact(statement, holds, kind, detail)

    def _fact(self, statement: str, holds: bool, kind: str, detail: str, steps: int = 0) -> bool:
        holds = bool(holds)
        label = KIND_LABELS.get(kind, "")
        mark = r"$\checkmark$" if holds else r"\textbf{FAILS}"
        tag = f" \\emph{{({label})}}" if label else ""
        latex = ("\\par\\noindent " + mark + " " + markup_latex(statement) + tag
                 + (" --- " + tex_escape(detail) if detail and not holds else "") + "\\par")
        text = f"[{'ok' if holds else 'FAILS'}] {markup_text(statement)}" + (f" ({label})" if label else "")
        self.items.append(Item(kind, holds, text, latex, "" if holds else (detail or markup_text(statement)),
                               steps))
        return holds

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "",
              kind: str = NUMERIC, ok: bool = True, detail: str = "", align: str = "") -> bool:
        """A table (cells are markup); ``kind`` labels it, ``ok`` says whether it supports the claim."""
        self.items.append(table_item(header, rows, caption, kind, ok, detail, align))
        return ok

    def figure(self, pictures: Sequence[str] | str, caption: str, per_row: int = 3) -> None:
        """One or more pictures (from :func:`plot`), side by side, with a caption."""
        if isinstance(pictures, str):
            pictures = [pictures]
        rows = [pictures[i:i + per_row] for i in range(0, len(pictures), per_row)]
        body = "\\\\[4mm]\n".join("\n\\hfill\n".join(r) + ("\n\\hfill\n" if len(r) > 1 else "\n")
                                     for r in rows)
        latex = ("\\par\\medskip\\noindent\\begin{minipage}{\\linewidth}\\centering\n" + body
                 + "\n\\par\\smallskip\\small\\textbf{Figure.} " + markup_latex(caption)
                 + "\\end{minipage}\\par\\medskip")
        self.items.append(Item(INFO, True, f"figure: {markup_text(caption)}", latex))


_NUMBER_CELL = re.compile(r"^\$?[-+]?[0-9.]+(\s*\\times\s*10\^\{[-0-9]+\})?\$?(\s*/.*)?$")


def _numeric_column(cells: Sequence[Any]) -> bool:
    return all(_NUMBER_CELL.match(str(c).strip()) or str(c).strip() in ("", "n/a") for c in cells)


def table_item(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "",
               kind: str = NUMERIC, ok: bool = True, detail: str = "", align: str = "") -> Item:
    align = align or "".join("r" if _numeric_column(col) else "l" for col in zip(*rows)) \
        if rows else "l" * len(header)
    head = " & ".join(markup_latex(str(h)) for h in header) + r" \\"
    body = [" & ".join(markup_latex(str(c)) for c in r) + r" \\" for r in rows]
    label = KIND_LABELS.get(kind, "")
    cap = markup_latex(caption)
    if label:
        cap = f"\\emph{{{label.capitalize()}.}} " + cap
    if not ok:
        cap = r"\textbf{Does not hold.} " + cap
    latex = ("\\par\\medskip\\noindent\\begin{minipage}{\\linewidth}\\centering\\small\n"
             f"\\symnetfit{{\\begin{{tabular}}{{{align}}}\\toprule\n{head}\n\\midrule\n"
             + "\n".join(body) + "\n\\bottomrule\\end{tabular}}\n"
             + (f"\\par\\smallskip\\raggedright {cap}" if cap else "")
             + "\\end{minipage}\\par\\medskip")
    widths = [max(len(markup_text(str(x))) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(markup_text(str(c)).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [header, *rows]]
    text = (f"{label}: " if label else "") + markup_text(caption or "table") + "\n" + "\n".join(
        "      " + ln for ln in lines)
    return Item(kind, bool(ok), text, latex, "" if ok else (detail or markup_text(caption)))


# ---------------------------------------------------------------------------
# Derivations in the document


def _symbol_names(derivation: Any) -> dict[str, str]:
    import sympy as sp

    from symnet.render.printing import symbol_latex

    names: dict[str, str] = {}
    for chain in derivation.chains:
        exprs = [chain.lhs, *(s.expr for s in chain.steps)] + [x for pair in chain.where for x in pair]
        for e in exprs:
            if isinstance(e, sp.Basic):
                for m in e.atoms(sp.MatrixSymbol):
                    names[m.name] = symbol_latex(m.name)
    return names


def _renamer(show: dict[str, str] | None):
    """A function applying display renames (``{"Wc": "W'"}``) to rendered LaTeX."""
    if not show:
        return lambda s: s
    from symnet.render.printing import symbol_latex

    pairs = [(symbol_latex(a), symbol_latex(b)) for a, b in show.items()]
    pairs += [(symbol_latex(a, bold=False), symbol_latex(b, bold=False)) for a, b in show.items()]

    def apply(s: str) -> str:
        for a, b in pairs:
            s = s.replace(a, b)
        return s

    return apply


def _name_pattern(names: dict[str, str]) -> re.Pattern | None:
    keys = sorted(names, key=len, reverse=True)
    if not keys:
        return None
    return re.compile(r"(?<![A-Za-z0-9_'])(" + "|".join(re.escape(k) for k in keys)
                      + r")(?![A-Za-z0-9_'{])")


def _with_names(text: str, names: dict[str, str], as_text, as_math) -> str:
    pattern = _name_pattern(names)
    if pattern is None:
        return as_text(text)
    out, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append(as_text(text[pos:m.start()]))
        out.append(as_math(names[m.group(1)]))
        pos = m.end()
    if pos < len(text):
        out.append(as_text(text[pos:]))
    return "".join(out)


def reason_latex(reason: str, names: dict[str, str]) -> str:
    """A stated reason, for math mode: ``\\text{...}`` for its words, the names
    (``W'_{1..2}``) and formulas (``f(z) = a z + c``) in it as math (``$...$`` is math already)."""
    from symnet.render.display import reason_latex as shown

    return shown(reason, names) if reason else ""


def _title_latex(title: str, names: dict[str, str]) -> str:
    """A chain title, for text mode: the matrix names in it as ``$...$`` (``$...$`` kept)."""
    out = []
    for piece in re.split(r"(\$[^$]*\$)", title):
        if len(piece) > 1 and piece.startswith("$") and piece.endswith("$"):
            out.append(piece)
        elif piece:
            out.append(_with_names(piece, names, tex_escape, lambda m: "$" + m + "$"))
    return "".join(out)


def _verdict_mark(step: Any) -> str:
    from symnet.render.display import latex_mark, shown

    text = shown(step)
    out = latex_mark(step.verdict)
    if text != "proved":
        out += r"\ \text{" + tex_escape(text) + "}"
    return out


def _latex(e: Any, rename) -> str:
    from symnet.render.display import expr_latex

    return rename(expr_latex(e))


def _failure_rows(step: Any, names: dict[str, str]) -> list[str]:
    """Under a step that is not proved: why, and a refuted step's counterexample."""
    from symnet.render.display import counterexample_rows

    if step.verdict == "proved":
        return []
    rows = []
    detail = step.check.detail if getattr(step, "check", None) is not None else ""
    if detail:
        rows.append(r"&\qquad \text{" + tex_escape(detail) + "}")
    ce = step.counterexample
    if step.verdict == "refuted" and isinstance(ce, dict) and ce:
        rows += counterexample_rows(ce, names)
    return rows


def _where_latex(where: Sequence[tuple], rename) -> str:
    defs = " \\\\\n".join(_latex(s, rename) + " &= " + _latex(e, rename) for s, e in where)
    return ("\\par\\nopagebreak{\\centering\\small\\symnetfit{where \\ $\\begin{aligned}[t]\n"
            + defs + "\n\\end{aligned}$}\\par}")


def _together(pieces: list[str]) -> str:
    """A chain with its title and ``where`` block on one page (a minipage does not break)."""
    return ("\\par\\vspace{3pt}\\noindent\\begin{minipage}{\\linewidth}\n" + "\n".join(pieces)
            + "\n\\end{minipage}\\par\\vspace{3pt}")


def chain_latex(chain: Any, names: dict[str, str], rename) -> str:
    """One chain as a centred ``aligned`` block (shrunk to the line width when wider), with
    its ``where`` block kept on the same page."""
    lhs = _latex(chain.lhs, rename)
    rows = []
    for i, step in enumerate(chain.steps):
        left = lhs + " &= " if i == 0 else "&= "
        reason = rename(reason_latex(step.reason, names)) if step.reason else ""
        tail = r"&& " + _verdict_mark(step) + (r"\ \ " + reason if reason else "")
        rows.append(left + _latex(step.expr, rename) + " " + tail)
        rows += [rename(r) for r in _failure_rows(step, names)]
    out = []
    if chain.title:
        out.append("\\emph{" + rename(_title_latex(chain.title, names)) + "}\\par\\nopagebreak")
    body = " \\\\\n".join(rows)
    out.append("{\\centering\\symnetfit{$\\displaystyle\\begin{aligned}\n" + body
               + "\n\\end{aligned}$}\\par}")
    if chain.where:
        out.append(_where_latex(chain.where, rename))
    return _together(out)


def compact_latex(chains: Sequence[Any], names: dict[str, str], rename) -> str:
    """One-step chains (definitions, gradients) as one ``aligned`` block, titles as reasons."""
    rows, where = [], []
    for chain in chains:
        (step,) = chain.steps
        label = chain.title or step.reason
        if chain.title and step.reason:
            label = f"{chain.title} ({step.reason})"
        reason = rename(reason_latex(label, names)) if label else ""
        rows.append(_latex(chain.lhs, rename) + " &= " + _latex(step.expr, rename) + r" && "
                    + _verdict_mark(step) + (r"\ \ " + reason if reason else ""))
        rows += [rename(r) for r in _failure_rows(step, names)]
        where += list(chain.where)
    out = ["{\\centering\\symnetfit{$\\displaystyle\\begin{aligned}\n"
           + " \\\\[2pt]\n".join(rows) + "\n\\end{aligned}$}\\par}"]
    if where:
        out.append(_where_latex(where, rename))
    return _together(out)


def derivation_item(derivation: Any, caption: str | None = None,
                    show: dict[str, str] | None = None) -> Item:
    """A checked derivation as an item: LaTeX of every chain, verdicts and failures.

    ``caption`` None uses the derivation's title; ``""`` prints none.
    """
    rename = _renamer(show)
    from symnet.render.display import symbol_names

    names = symbol_names(derivation)  # a 1x1 L, the loss, is a scalar: not bold
    steps = derivation.steps
    ok = bool(derivation.ok) and bool(steps)
    trials = sum(s.check.numeric.trials for s in steps)
    cap = derivation.title if caption is None else caption
    parts = []
    if cap:
        parts.append("\\par\\medskip\\noindent\\textbf{" + markup_latex(cap) + "}\\par")
    chains = derivation.chains
    if len(chains) > 1 and all(len(c.steps) == 1 for c in chains):
        parts.append(compact_latex(chains, names, rename))
    else:
        for chain in chains:
            parts.append(chain_latex(chain, names, rename))
    for note in derivation.notes:
        parts.append("\\par\\noindent{\\small " + markup_latex(note) + "}\\par")  # networks in words
    bad = [s for s in steps if not s.ok]
    if ok:
        head = "The only step" if len(steps) == 1 else f"All {len(steps)} steps"
        summary = (f"{head} proved by the symnet kernel "
                   f"(normal forms agree) and cross-checked numerically ({_plural(trials, 'random instance')}).")
    elif not steps:
        summary = "No steps: nothing was proved."
    else:
        summary = f"{len(bad)} of {_plural(len(steps), 'step')} NOT proved: " + "; ".join(
            f"{s.verdict}: {s.check.detail}" for s in bad[:3])
    parts.append("\\par\\noindent{\\small\\emph{" + tex_escape(summary) + "}}\\par")
    detail = "" if ok else summary
    text = f"{cap or 'checked derivation'}: " + (
        f"{len(steps)} step{'s' if len(steps) != 1 else ''} proved" if ok else summary)
    return Item(KERNEL, ok, markup_text(text), "\n".join(parts), detail, sum(1 for s in steps if s.ok))


# ---------------------------------------------------------------------------
# Plots as LaTeX pictures (no plotting library needed)


@dataclass(frozen=True)
class Series:
    """A polyline to draw (``solid``, ``thin``, ``dashed``) or markers (``dots``, ``circles``)."""

    xs: Sequence[float]
    ys: Sequence[float]
    style: str = "solid"
    color: str = "black"


def _clip(x0, y0, x1, y1, xmin, xmax, ymin, ymax):
    """Liang-Barsky clipping of a segment to a box, or None."""
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - xmin), (dx, xmax - x0), (-dy, y0 - ymin), (dy, ymax - y0)):
        if p == 0:
            if q < 0:
                return None
            continue
        r = q / p
        if p < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 > t1:
            return None
    return x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != 0 else "0"


def plot(series: Sequence[Series], xlim: tuple[float, float], ylim: tuple[float, float],
         width: float = 50.0, height: float = 30.0, title: str = "",
         xticks: Sequence[float] = (), yticks: Sequence[float] = ()) -> str:
    """A small plot as a LaTeX ``picture`` (sizes in mm): frame, zero axes, ticks, curves.

    Curves are drawn with LaTeX's own ``\\qbezier`` (straight pieces), so the
    document needs no plotting library and no extra package.
    """
    (x_lo, x_hi), (y_lo, y_hi) = xlim, ylim
    sx, sy = width / (x_hi - x_lo), height / (y_hi - y_lo)

    def X(x: float) -> float:
        return (x - x_lo) * sx

    def Y(y: float) -> float:
        return (y - y_lo) * sy

    # the box includes the tick labels below and left, and the title above
    left, below, above = (7.0 if yticks else 1.0), (4.0 if xticks else 1.0), (4.5 if title else 1.0)
    out = [f"\\setlength{{\\unitlength}}{{1mm}}\\begin{{picture}}({_fmt(width + left + 1)},"
           f"{_fmt(height + below + above)})({_fmt(-left)},{_fmt(-below)})%"]
    out.append("{\\color{gray}\\thinlines%")
    if x_lo < 0 < x_hi:
        out.append(f"\\qbezier[{math.ceil(height * 12)}]({_fmt(X(0))},0)({_fmt(X(0))},{_fmt(height / 2)})({_fmt(X(0))},{_fmt(height)})%")
    if y_lo < 0 < y_hi:
        out.append(f"\\qbezier[{math.ceil(width * 12)}](0,{_fmt(Y(0))})({_fmt(width / 2)},{_fmt(Y(0))})({_fmt(width)},{_fmt(Y(0))})%")
    out.append("}%")
    out.append(f"\\put(0,0){{\\framebox({_fmt(width)},{_fmt(height)}){{}}}}%")
    for t in xticks:
        out.append(f"\\put({_fmt(X(t))},-1){{\\makebox(0,0)[t]{{\\tiny ${_fmt(t)}$}}}}%")
    for t in yticks:
        out.append(f"\\put(-1,{_fmt(Y(t))}){{\\makebox(0,0)[r]{{\\tiny ${_fmt(t)}$}}}}%")
    if title:
        out.append(f"\\put({_fmt(width / 2)},{_fmt(height + 1)}){{\\makebox(0,0)[b]{{\\scriptsize {title}}}}}%")
    for s in series:
        pts = [(X(float(x)), Y(float(y))) for x, y in zip(s.xs, s.ys)]
        segs = []
        for (a, b), (c, d) in zip(pts, pts[1:]):
            if not all(math.isfinite(v) for v in (a, b, c, d)):
                continue
            clipped = _clip(a, b, c, d, 0.0, width, 0.0, height)
            if clipped is not None:
                segs.append(clipped)
        if s.style == "dashed":
            segs = _dashes(segs)
        segs = _merge_short(segs)
        thick = {"solid": "\\linethickness{0.7pt}", "thin": "\\linethickness{0.4pt}",
                 "dashed": "\\linethickness{0.5pt}", "dots": "\\thinlines",
                 "circles": "\\thinlines"}[s.style]
        out.append(f"{{\\color{{{s.color}}}{thick}%")
        if s.style in ("dots", "circles"):  # markers at the points themselves
            star = "*" if s.style == "dots" else ""
            for a, b in pts:
                if math.isfinite(a) and math.isfinite(b) and 0 <= a <= width and 0 <= b <= height:
                    out.append(f"\\put({_fmt(a)},{_fmt(b)}){{\\circle{star}{{1.6}}}}%")
            out.append("}%")
            continue
        for a, b, c, d in segs:
            # an explicit number of dots: LaTeX's own count divides by zero on short pieces
            dots = max(2, math.ceil(math.hypot(c - a, d - b) * 12))
            out.append(f"\\qbezier[{dots}]({a:.2f},{b:.2f})({(a + c) / 2:.3f},{(b + d) / 2:.3f})({c:.2f},{d:.2f})%")
        out.append("}%")
    out.append("\\end{picture}")
    return "\n".join(out)


def _merge_short(segs: list[tuple], minimum: float = 0.2) -> list[tuple]:
    """Join consecutive pieces shorter than ``minimum`` mm (LaTeX's \\qbezier overflows on
    near-zero lengths); a lone piece that stays too short is dropped."""
    out: list[tuple] = []
    cur = None
    for a, b, c, d in segs:
        if cur is not None and math.isclose(cur[2], a, abs_tol=1e-9) and math.isclose(cur[3], b, abs_tol=1e-9) \
                and math.hypot(cur[2] - cur[0], cur[3] - cur[1]) < minimum:
            cur = (cur[0], cur[1], c, d)
            continue
        if cur is not None:
            out.append(cur)
        cur = (a, b, c, d)
    if cur is not None:
        out.append(cur)
    return [q for q in out if math.hypot(q[2] - q[0], q[3] - q[1]) >= minimum / 3]


def _dashes(segs: list[tuple], on: float = 1.2, off: float = 0.9) -> list[tuple]:
    """Cut segments into dashes ``on`` mm long with ``off`` mm gaps (continuing across joints)."""
    out, phase = [], 0.0
    period = on + off
    for a, b, c, d in segs:
        length = math.hypot(c - a, d - b)
        s = 0.0
        while s < length:
            pos = (phase + s) % period
            if pos < on:
                run = min(on - pos, length - s)
                t0, t1 = s / length, (s + run) / length
                out.append((a + t0 * (c - a), b + t0 * (d - b), a + t1 * (c - a), b + t1 * (d - b)))
            else:
                run = min(period - pos, length - s)
            s += max(run, 1e-9)
        phase = (phase + length) % period
    return out


# ---------------------------------------------------------------------------
# Results of proof files, grouped by claim


@dataclass
class Part:
    """The result of one proof file."""

    claim: str
    title: str
    statement: str
    source: str
    items: list[Item] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """No error, every item holds, and something other than prose was checked."""
        return (self.error is None and all(i.ok for i in self.items)
                and any(i.kind != INFO for i in self.items))

    @property
    def kinds(self) -> set[str]:
        return {i.kind for i in self.items}

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "title": self.title,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "items": [i.to_dict() for i in self.items if i.kind != INFO or not i.ok],
        }


@dataclass
class ClaimResult:
    """Every part about one claim."""

    claim: str
    parts: list[Part]
    statement: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.parts) and all(p.ok for p in self.parts)

    @property
    def title(self) -> str:
        return next((p.title for p in self.parts if p.title), self.claim)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts)

    @property
    def status(self) -> str:
        """``proved``, ``proved + numeric evidence``, ``numeric evidence`` or ``FAILED``."""
        if not self.ok:
            return "FAILED"
        kinds = set().union(*(p.kinds for p in self.parts))
        proof = bool(kinds & {KERNEL, EXACT})
        numeric = NUMERIC in kinds
        if proof and numeric:
            return "proved + numeric evidence"
        if proof:
            return "proved"
        return "numeric evidence" if numeric else "nothing checked"

    @property
    def steps(self) -> int:
        return sum(i.steps for p in self.parts for i in p.items)

    def to_dict(self) -> dict:
        return {
            "claim": self.claim,
            "title": self.title,
            "statement": self.statement,
            "ok": self.ok,
            "status": self.status,
            "kernel_steps": self.steps,
            "seconds": round(self.seconds, 3),
            "parts": [p.to_dict() for p in self.parts],
        }


@dataclass
class Report:
    """The whole library: one :class:`ClaimResult` per claim found, and what is missing."""

    directory: str
    claims: list[ClaimResult]
    missing: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.missing and bool(self.claims) and all(c.ok for c in self.claims)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def claim(self, claim: str) -> ClaimResult | None:
        return next((c for c in self.claims if c.claim == claim), None)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "directory": self.directory,
            "seconds": round(self.seconds, 3),
            "missing": list(self.missing),
            "claims": [c.to_dict() for c in self.claims],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self, verbose: bool = False) -> str:
        return report_text(self, verbose)

    def to_latex(self) -> str:
        return report_latex(self)


# ---------------------------------------------------------------------------
# Running proof files


_META = re.compile(r"^#\s*(claim|title|statement|show)\s*:\s*(.*)$", re.I)
_CONT = re.compile(r"^#\s{2,}(\S.*)$")


def deriv_metadata(text: str) -> dict[str, Any]:
    """The ``# claim:``, ``# title:``, ``# statement:``, ``# show: A as B`` header of a ``.deriv`` file."""
    meta: dict[str, Any] = {"show": {}}
    key = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            key = None
            continue
        if not stripped.startswith("#"):
            break
        m = _META.match(stripped)
        if m:
            key, value = m.group(1).lower(), m.group(2).strip()
            if key == "show":
                a, _, b = value.partition(" as ")
                if a.strip() and b.strip():
                    meta["show"][a.strip()] = b.strip()
                key = None
            else:
                meta[key] = value
            continue
        c = _CONT.match(line.rstrip())
        if key in ("title", "statement") and c:
            meta[key] = (meta[key] + " " + c.group(1).strip()).strip()
        else:
            key = None
    return meta


def run_deriv(path: Path) -> Part:
    """Check a ``.deriv`` proof with :mod:`symnet.notes.checkfile`; every step must be proved."""
    from symnet.notes.checkfile import check_file

    start = time.perf_counter()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Part("C?", path.name, "", str(path), error=f"cannot read {path}: {exc}")
    meta = deriv_metadata(text)
    claim = meta.get("claim", "").strip().upper()
    part = Part(claim, meta.get("title", ""), meta.get("statement", ""), str(path))
    if not _CLAIM_ID.match(claim):
        part.error = f"{path}: no '# claim: Cn' line in the header"
        part.claim = "C?"
        return part
    result = check_file(str(path))
    part.seconds = time.perf_counter() - start
    if result.malformed:
        part.error = f"malformed: {result.error}"
        part.items.append(Item(KERNEL, False, f"malformed: {result.error}",
                               "\\par\\noindent\\textbf{Malformed:} \\texttt{" + tex_escape(result.error or "")
                               + "}\\par", result.error or ""))
        return part
    if result.derivation is None or not result.derivation.chains:
        part.error = f"{path}: no steps to check"
        return part
    shown = getattr(result, "shown", None) or result.derivation  # diff(...) shown as d/dz
    item = derivation_item(shown, "", meta["show"])
    if not item.ok:  # name the failing lines, as the checker does
        bad = [f"line {s.line}: {s.verdict}: {s.detail}" for s in result.steps if not s.ok]
        item = Item(item.kind, False, item.text + "\n      " + "\n      ".join(bad), item.latex,
                    "; ".join(bad), item.steps)
    part.items.append(item)
    return part


def _load_module(path: Path):
    name = "symnet_proof_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SymnetError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def run_python(path: Path) -> Part:
    """Import a Python proof by path and call its ``run()``; an exception fails the part."""
    start = time.perf_counter()
    part = Part("C?", path.stem, "", str(path))
    try:
        module = _load_module(path)
        claim = getattr(module, "CLAIM", "")
        if not isinstance(claim, str) or not _CLAIM_ID.match(claim):
            raise SymnetError(f"{path}: CLAIM must be a claim id such as 'C7'")
        part.claim = claim
        part.title = str(getattr(module, "TITLE", ""))
        part.statement = str(getattr(module, "STATEMENT", ""))
        run = getattr(module, "run", None)
        if not callable(run):
            raise SymnetError(f"{path}: no run() function")
        section = run()
        if not isinstance(section, Section):
            raise SymnetError(f"{path}: run() must return a symnet.notes.proofs.Section")
        if section.claim != claim:
            raise SymnetError(f"{path}: run() returned a section for {section.claim}, not {claim}")
        part.items = list(section.items)
        part.title = section.title or part.title
        part.statement = section.statement or part.statement
        if not part.items:
            part.error = f"{path}: the section records nothing"
    except Exception as exc:  # a proof that crashes proves nothing; report where
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb)
                      if f.filename == str(path)), path.name)
        part.error = f"{where}: {type(exc).__name__}: {exc}"
        part.items.append(Item(INFO, False, f"error: {part.error}",
                               "\\par\\noindent\\textbf{Error:} \\texttt{" + tex_escape(part.error) + "}\\par",
                               part.error))
    part.seconds = time.perf_counter() - start
    return part


def discover(directory: str | os.PathLike) -> list[Path]:
    """Proof files in ``directory``: ``*.deriv`` and ``*.py`` (not starting with ``_``), sorted."""
    d = Path(directory)
    if not d.is_dir():
        raise SymnetError(f"{d}: not a directory")
    files = [p for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith((".", "_"))
             and p.suffix in (".deriv", ".py")]
    if not files:
        raise SymnetError(f"{d}: no proof files (*.deriv, *.py)")
    return files


def run_file(path: str | os.PathLike) -> Part:
    """Run one proof file (``.deriv`` or ``.py``)."""
    p = Path(path)
    return run_deriv(p) if p.suffix == ".deriv" else run_python(p)


def _run_batch(paths: list[str]) -> list[Part]:
    """A worker process's share. It is a process of its own, so it tunes its collector:
    what it inherited stays (frozen), and it collects less often. SymPy makes many small
    objects that live as long as its caches, and the default threshold spent about 5%
    of the library's time collecting them."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return [run_file(p) for p in paths]


def _batches(files: list[Path], workers: int) -> list[list[Path]]:
    """Split the files over the workers: largest expected cost first, each to the
    least loaded worker (a proof may state its cost with a ``# seconds: N`` line).
    Files with the same ``# together: NAME`` line go to one worker as one unit: they
    share work a process keeps (the catalogue's derived properties, computed once)."""
    units: dict[str, list[Path]] = {}
    for f in files:
        m = _TOGETHER.search(_head(f))
        units.setdefault(m.group(1) if m else str(f), []).append(f)
    batches: list[list[Path]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    costed = sorted(((sum(map(_cost_hint, u)), u) for u in units.values()), key=lambda cu: cu[0], reverse=True)
    for cost, unit in costed:
        i = min(range(workers), key=lambda k: load[k])
        batches[i].extend(unit)
        load[i] += cost
    return [b for b in batches if b]


_TOGETHER = re.compile(r"^#\s*together:\s*(\S+)", re.M)


def _head(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return ""


def check_directory(directory: str | os.PathLike, require: Iterable[str] = (), jobs: int = 1,
                    only: Iterable[str] | None = None) -> Report:
    """Run every proof in ``directory`` and group the parts by claim.

    ``require``: claims that must have a proof (missing ones make the report fail);
    ``jobs``: processes to run the files in (1: in this process);
    ``only``: run only the proofs of these claims.
    """
    start = time.perf_counter()
    files = discover(directory)
    only_set = set(only) if only is not None else None
    if only_set is not None:
        files = [f for f in files if _claim_of_file(f) in only_set]
    parts: list[Part]
    workers = min(len(files), jobs if jobs > 0 else (os.cpu_count() or 1))
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        batches = _batches(files, workers)
        try:
            with ProcessPoolExecutor(max_workers=len(batches)) as pool:
                results = list(pool.map(_run_batch, [[str(f) for f in b] for b in batches]))
            by_path = {p.source: p for batch in results for p in batch}
            parts = [by_path[str(f)] for f in files]
        except (OSError, BrokenProcessPool):  # no processes here: run them in this one
            parts = [run_file(f) for f in files]
    else:
        parts = [run_file(f) for f in files]
    grouped: dict[str, list[Part]] = {}
    for p in parts:
        grouped.setdefault(p.claim, []).append(p)
    claims = []
    for claim in sorted(grouped, key=lambda c: claim_number(c) if _CLAIM_ID.match(c) else 999):
        ps = grouped[claim]
        statement = next((p.statement for p in ps if p.statement), "")
        claims.append(ClaimResult(claim, ps, statement))
    required = [c for c in require if only_set is None or c in only_set]
    missing = tuple(c for c in required if c not in grouped)
    return Report(str(directory), claims, missing, time.perf_counter() - start)


_CLAIM_IN_TEXT = re.compile(r"^(?:#\s*claim\s*:\s*|CLAIM\s*=\s*['\"])(C[0-9]+)", re.M | re.I)


def _claim_of_file(path: Path) -> str:
    try:
        m = _CLAIM_IN_TEXT.search(path.read_text(encoding="utf-8", errors="replace")[:20000])
    except OSError:
        return "C?"
    return m.group(1).upper() if m else "C?"


_SECONDS = re.compile(r"^#\s*seconds:\s*([0-9.]+)", re.M)


def _cost_hint(path: Path) -> float:
    """Expected seconds: a ``# seconds: N`` line, else a guess from the file size."""
    m = _SECONDS.search(_head(path))
    if m:
        return float(m.group(1))
    try:
        return path.stat().st_size * (3 if path.suffix == ".py" else 1) / 100_000
    except OSError:
        return 0.0


def shipped_directory() -> Path:
    """symnet's own proof library: ``proofs/`` of a source clone, else the copy in the package.

    In a clone the library is the top-level ``proofs/`` beside ``pyproject.toml``; an
    installed symnet ships the same files as ``symnet/_proofs`` (package data).
    """
    package = Path(__file__).resolve().parent.parent  # symnet/notes/proofs.py -> symnet/
    clone = package.parent / "proofs"
    if clone.is_dir() and (package.parent / "pyproject.toml").is_file():
        return clone
    return package / "_proofs"


def default_directory() -> Path:
    """``./proofs`` when it exists, else symnet's own library (:func:`shipped_directory`)."""
    here = Path.cwd() / "proofs"
    if here.is_dir():
        return here
    shipped = shipped_directory()
    if not shipped.is_dir():
        raise SymnetError(f"no proofs directory: neither ./proofs nor symnet's own library ({shipped}) "
                          "exists; give the directory")
    return shipped


# ---------------------------------------------------------------------------
# Views


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def report_text(report: Report, verbose: bool = False) -> str:
    """One line per claim (status, time, title); failures in detail; ``verbose`` lists every item."""
    out = [f"symnet proof library: {report.directory}"]
    width = max([len(c.status) for c in report.claims] + [8])
    for c in report.claims:
        out.append(f"{c.claim:<4} {c.status:<{width}} {c.seconds:6.2f}s  {c.title}")
        for p in c.parts:
            show = verbose or not p.ok
            if not show:
                continue
            out.append(f"       {os.path.basename(p.source)} ({p.seconds:.2f}s)"
                       + ("" if p.ok else f": FAILED{': ' + p.error if p.error else ''}"))
            for i in p.items:
                if i.kind == INFO and i.ok:
                    continue
                if verbose or not i.ok:
                    for k, line in enumerate(i.text.splitlines()):
                        out.append(("         - " if k == 0 else "         ") + line)
    for m in report.missing:
        out.append(f"{m:<4} {'MISSING':<{width}}          no proof of this claim")
    held = sum(1 for c in report.claims if c.ok)
    steps = sum(c.steps for c in report.claims)
    summary = (f"{_plural(len(report.claims), 'claim')}, {held} hold; "
               f"{_plural(steps, 'step')} proved by the kernel; {report.seconds:.2f}s")
    if report.missing:
        summary += f"; missing: {', '.join(report.missing)}"
    out.append(summary + (": OK" if report.ok else ": FAILED"))
    return "\n".join(out) + "\n"


PREAMBLE = r"""\documentclass[11pt,a4paper]{article}
\usepackage{amsmath,amssymb,bm}
\usepackage[margin=2cm]{geometry}
\usepackage{graphicx}
\usepackage{booktabs}
\usepackage{xcolor}
\usepackage[hidelinks]{hyperref}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.4\baselineskip}
\newsavebox{\symnetbox}
% typeset #1 at its natural width, or shrunk to the line width when wider
\newcommand{\symnetfit}[1]{\sbox{\symnetbox}{#1}%
  \ifdim\wd\symnetbox>\linewidth\resizebox{\linewidth}{!}{\usebox{\symnetbox}}%
  \else\usebox{\symnetbox}\fi}
"""


def _claim_latex(c: ClaimResult) -> str:
    out = [f"\\section{{{c.claim}: {tex_escape(c.title)}}}"]
    status = c.status
    out.append("\\noindent\\textbf{Claim.} \\emph{" + markup_latex(c.statement) + "}\\par")
    out.append("\\noindent\\textbf{Status:} " + tex_escape(status)
               + f" \\hfill {{\\small {c.steps} kernel step{'s' if c.steps != 1 else ''}, "
               f"{c.seconds:.2f}\\,s}}\\par")
    for p in c.parts:
        src = os.path.basename(p.source)
        head = "\\par\\medskip\\noindent{\\small Source: \\texttt{" + tex_escape(src) + "}"
        if p.title and p.title != c.title:
            head += " --- " + markup_latex(p.title)
        out.append(head + "}\\par")
        for i in p.items:
            out.append(i.latex)
        if p.error and not any(not i.ok for i in p.items):
            out.append("\\par\\noindent\\textbf{Error:} \\texttt{" + tex_escape(p.error) + "}\\par")
    return "\n".join(out)


def report_latex(report: Report, title: str = "The claims of symnet, checked") -> str:
    """One LaTeX document: title, legend, a summary table, and a section per claim."""
    rows = []
    for c in report.claims:
        rows.append(f"{c.claim} & {tex_escape(c.title)} & {tex_escape(c.status)} \\\\")
    for m in report.missing:
        rows.append(f"{m} & (no proof) & MISSING \\\\")
    summary = ("\\begin{center}\\small\\begin{tabular}{lp{10.5cm}l}\\toprule\n"
               "Claim & Title & Status \\\\\\midrule\n" + "\n".join(rows)
               + "\n\\bottomrule\\end{tabular}\\end{center}")
    legend = (
        "Every claim in the table below has a section, built by running the proof "
        "library in \\texttt{proofs/} (\\texttt{symnet proofs build}).  Each piece says how "
        "it was established.  \\emph{Proved by the symnet kernel}: every step of the "
        "derivation (marked $\\checkmark$) was decided by the kernel, which brings both sides "
        "to a normal form and compares them, and cross-checked on seeded random instances. "
        "\\emph{Exact SymPy computation}: a limit, a determinant or exact rational arithmetic "
        "on finitely many cases, computed by SymPy. \\emph{Numeric evidence}: seeded "
        "floating-point experiments; they support a claim and never count as its proof.")
    total = "All claims hold." if report.ok else "\\textbf{Some claims do not hold or are missing.}"
    body = "\n\n".join(_claim_latex(c) for c in report.claims)
    return (
        PREAMBLE
        + "\\title{" + tex_escape(title) + "}\n\\author{generated by symnet}\n\\date{}\n"
        + "\\begin{document}\n\\maketitle\n"
        + legend + "\n\n" + summary + "\n\\noindent " + total
        + f" {_plural(sum(c.steps for c in report.claims), 'step')} proved by the kernel; "
        + f"checked in {report.seconds:.1f}\\,s.\\par\n"
        + body + "\n\\end{document}\n"
    )


# ---------------------------------------------------------------------------
# PDF


def compile_pdf(latex: str, out_path: str | os.PathLike, timeout: float = 180.0) -> None:
    """Compile a LaTeX document with ``pdflatex`` (twice, in a temporary directory).

    Raises :class:`~symnet.errors.SymnetError` with the log's error lines when
    pdflatex is missing or fails.
    """
    exe = shutil.which("pdflatex")
    if exe is None:
        raise SymnetError("pdflatex is not installed (Debian: apt-get install texlive-latex-base "
                          "texlive-latex-recommended texlive-fonts-recommended)")
    with tempfile.TemporaryDirectory(prefix="symnet-proofs-") as tmp:
        tex = os.path.join(tmp, "proofs.tex")
        with open(tex, "w", encoding="utf-8") as handle:
            handle.write(latex)
        for _ in range(2):  # the second run settles references and bookmarks
            try:
                proc = subprocess.run(
                    [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "proofs.tex"],
                    cwd=tmp, capture_output=True, text=True, timeout=timeout,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                raise SymnetError(f"pdflatex took longer than {timeout:.0f} s") from None
            if proc.returncode != 0:
                raise SymnetError("pdflatex failed:\n" + latex_errors(_read_log(tmp, proc)))
        pdf = os.path.join(tmp, "proofs.pdf")
        if not os.path.exists(pdf):
            raise SymnetError("pdflatex produced no PDF:\n" + latex_errors(_read_log(tmp, proc)))
        try:
            shutil.copyfile(pdf, out_path)
        except OSError as exc:
            raise SymnetError(f"cannot write {out_path}: {exc.strerror or exc}") from None


def _read_log(tmp: str, proc: subprocess.CompletedProcess) -> str:
    try:
        with open(os.path.join(tmp, "proofs.log"), encoding="latin-1") as handle:
            return handle.read()
    except OSError:
        return (proc.stdout or "") + (proc.stderr or "")


def latex_errors(log: str, context: int = 3) -> str:
    """The error lines of a LaTeX log (``! ...`` and the few lines after each)."""
    lines = log.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("!"):
            out += lines[i:i + context + 1]
    if not out:
        out = lines[-5:]
    return "\n".join(out[:40])


__all__ = [
    "CLAIMS",
    "EXACT",
    "INFO",
    "KERNEL",
    "NUMERIC",
    "REQUIRED",
    "ClaimResult",
    "Item",
    "Part",
    "Report",
    "Section",
    "Series",
    "check_directory",
    "compile_pdf",
    "default_directory",
    "shipped_directory",
    "deriv_metadata",
    "discover",
    "latex_errors",
    "markup_latex",
    "markup_text",
    "parse_claims",
    "plot",
    "run_file",
    "sci",
    "tex_escape",
]
