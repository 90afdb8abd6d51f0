"""Rich displays of symnet's results: HTML, Markdown and LaTeX with verdict marks.

Views only (nothing here computes or checks).  Every result object's Jupyter
methods (``_repr_html_``, ``_repr_markdown_``, ``_repr_latex_``) and short
``__repr__`` come from here, so that they look alike:

* a verdict mark on every step and every summary: ``✓`` proved (with its side
  conditions when it holds under some: ``✓ proved, for u != 0``), ``✗`` refuted
  (with the counterexample), ``?`` unproved (with the reason);
* LaTeX stacked vertically: one ``$$\\begin{aligned}...\\end{aligned}$$`` block
  per chain, never several ``aligned`` blocks side by side in one ``$$``;
* Markdown math as ``$$\\begin{aligned}...\\end{aligned}$$`` (never ``align*``
  inside ``$$``, which GitHub, KaTeX and MathJax reject);
* HTML well formed, every piece of text escaped.

:func:`reason_latex` typesets a stated reason for math mode: words as
``\\text{...}``, the names and formulas in it as math (``definition of
W'_{1..2}`` shows a primed, subscripted W, ``f(z) = a z + c`` a formula).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

PROVED, REFUTED, UNPROVED = "proved", "refuted", "unproved"

#: The mark of each verdict in text, HTML and Markdown.
MARKS = {PROVED: "✓", REFUTED: "✗", UNPROVED: "?"}
#: The mark of each verdict in LaTeX math (pdflatex, MathJax and KaTeX all know these).
LATEX_MARKS = {PROVED: r"\checkmark", REFUTED: r"\boldsymbol{\times}", UNPROVED: r"\mathbf{?}"}
#: Matrices in counterexamples are shown up to this many rows and columns.
SHOW_ENTRIES = 6

_COLORS = {PROVED: "#1a7f37", REFUTED: "#cf222e", UNPROVED: "#9a6700"}


def combine(verdicts) -> str:
    """The verdict of several steps (:func:`symnet.notes.derivation.combine`, imported on use so
    that this module stays light)."""
    from symnet.notes.derivation import combine as rule

    return rule(verdicts)


# ---------------------------------------------------------------------------
# Verdicts


def mark(verdict: str) -> str:
    """``✓``, ``✗`` or ``?``."""
    return MARKS.get(verdict, "?")


def latex_mark(verdict: str) -> str:
    return LATEX_MARKS.get(verdict, LATEX_MARKS[UNPROVED])


def shown(step: Any) -> str:
    """The verdict as a reader sees it, side conditions included (``proved, for u != 0``)."""
    for obj in (step, getattr(step, "check", None)):
        value = getattr(obj, "shown", None) if obj is not None else None
        if isinstance(value, str):
            return value
    verdict = getattr(step, "verdict", UNPROVED)
    conditions = tuple(getattr(step, "conditions", ()) or ())
    return f"{verdict}, for {', '.join(conditions)}" if verdict == PROVED and conditions else verdict


def _detail(step: Any) -> str:
    detail = getattr(step, "detail", None)
    if detail is None:
        detail = getattr(getattr(step, "check", None), "detail", "")
    return detail or ""


def _counterexample(step: Any) -> dict | None:
    ce = getattr(step, "counterexample", None)
    return ce if isinstance(ce, dict) and ce else None




def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def steps_summary(steps: Sequence[Any], trials: int | None = None) -> str:
    """``✓ All 3 steps proved ...``, ``✓ The 1 step proved ...``, ``✗ 1 refuted, 2 proved (of 3 steps)``."""
    n = len(steps)
    if not n:
        return "No steps to check."
    counts = {v: sum(1 for s in steps if getattr(s, "verdict", None) == v) for v in (REFUTED, UNPROVED, PROVED)}
    if counts[PROVED] == n:
        head = "The only step" if n == 1 else f"All {n} steps"
        tail = f" and cross-checked numerically ({plural(trials, 'random instance')})" if trials else ""
        return f"{mark(PROVED)} {head} proved by the symnet kernel{tail}."
    parts = ", ".join(f"{c} {v}" for v, c in counts.items() if c)
    return f"{mark(combine(counts_verdicts(counts)))} {parts} (of {plural(n, 'step')})."


def counts_verdicts(counts: dict[str, int]) -> list[str]:
    return [v for v, c in counts.items() if c]


# ---------------------------------------------------------------------------
# Text pieces


def esc(text: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "^": r"\^{}", "~": r"\~{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_TEX_UNICODE = {
    "\u2013": "--", "\u2014": "---", "\u2018": "`", "\u2019": "'", "\u201c": "``", "\u201d": "''",
    "\u2026": r"\dots{}", "\u00d7": r"$\times$", "\u2264": r"$\le$", "\u2265": r"$\ge$",
    "\u2260": r"$\ne$", "\u2192": r"$\to$", "\u221e": r"$\infty$", "\u2208": r"$\in$",
    "\u2299": r"$\odot$", "\u00b1": r"$\pm$", "\u2713": r"$\checkmark$", "\u2717": r"$\times$",
    "\u03c3": r"$\sigma$", "\u03b4": r"$\delta$", "\u03bb": r"$\lambda$", "\u03b1": r"$\alpha$",
}


def tex_text(text: str) -> str:
    """Plain text for LaTeX text mode (special characters escaped, a few signs mapped)."""
    out = []
    for ch in str(text):
        if ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif ch in _TEX_UNICODE:
            out.append(_TEX_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


def text_in_math(text: str) -> str:
    """Plain text inside math: ``\\text{...}`` (empty for no text)."""
    return r"\text{" + tex_text(text) + "}" if text else ""


# ---------------------------------------------------------------------------
# Reasons: words as text, names and formulas as math

#: a name as symnet writes one: W1, h_2, W'_{1..2}, b'_1, delta3
_NAME = r"[A-Za-z]+'*(?:_\{[^{}\s]*\}|_[A-Za-z0-9]+|[0-9]+)?'*"
_NAME_RE = re.compile(r"(?<![A-Za-z0-9_'\\])(" + _NAME + r")(?![A-Za-z0-9_'{])")
#: a formula: a stretch of names, numbers, operators and brackets with a '=' in it
_FORMULA_RE = re.compile(r"[A-Za-z0-9_'(){}.,^*/+\- ]*=[A-Za-z0-9_'(){}.,^*/+\-= ]*")
_FUNCTIONS = {"exp": r"\exp", "log": r"\log", "tanh": r"\tanh", "sin": r"\sin", "cos": r"\cos",
              "sigma": r"\sigma", "sigmoid": r"\sigma", "max": r"\max", "min": r"\min",
              "relu": r"\operatorname{relu}", "softmax": r"\operatorname{softmax}", "tr": r"\operatorname{tr}",
              "trace": r"\operatorname{tr}", "sum": r"\operatorname{sum}"}
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "lambda", "mu", "sigma", "tau", "phi", "theta"}


def _looks_like_name(word: str) -> bool:
    """``W1``, ``h_2``, ``W'_{1..2}`` are names; ``of``, ``the``, ``a`` are words."""
    return bool(re.search(r"[0-9_']", word)) and bool(re.fullmatch(_NAME, word))


def _name_latex(word: str, names: dict[str, str]) -> str:
    if word in names:
        return names[word]
    from symnet.render.printing import symbol_latex

    return symbol_latex(word, bold=False)


def _formula_latex(formula: str, names: dict[str, str]) -> str:
    """``f(z) = a z + c`` -> ``f(z) = a z + c`` in math, names bold where they are matrices."""

    def word(m: re.Match) -> str:
        w = m.group(0)
        if w in names:
            return names[w]
        if w in _FUNCTIONS:
            return _FUNCTIONS[w]
        if w.lower() in _GREEK and w.islower():
            return "\\" + w
        if len(w) == 1 or _looks_like_name(w):
            return _name_latex(w, names)
        return r"\mathrm{" + w + "}"

    out = re.sub(_NAME, word, formula.strip())
    return out.replace("*", r"\,").replace("{..", "{..")


def _is_formula(piece: str) -> bool:
    """A stretch with ``=`` whose every word is short (a name, a function, a letter)."""
    if "=" not in piece:
        return False
    words = re.findall(r"[A-Za-z]+", piece)
    return all(len(w) <= 2 or w in _FUNCTIONS or w.lower() in _GREEK or _looks_like_name(w) for w in words) \
        and bool(re.search(r"[A-Za-z0-9]", piece))


def reason_latex(reason: str, names: dict[str, str] | None = None) -> str:
    """A stated reason for math mode: ``\\text{...}`` for words, math for names and formulas.

    ``names`` maps symbol names to their LaTeX (``{"W1": "\\mathbf{W}_{1}"}``);
    other names with a subscript, digits or a prime (``W'_{1..2}``, ``h_1``) are
    typeset as symbols too, and a comma-separated piece that is a formula
    (``f(z) = a z + c``) as math.  ``$...$`` in a reason is math already.
    """
    if not reason:
        return ""
    names = names or {}
    out: list[str] = []
    for piece in re.split(r"(\$[^$]*\$)", reason):
        if len(piece) > 1 and piece.startswith("$") and piece.endswith("$"):
            out.append(piece[1:-1])
            continue
        # formulas: the comma/and-separated pieces that are one
        chunks = re.split(r"(,\s+|\s+and\s+|;\s+|:\s+)", piece)
        for chunk in chunks:
            if not chunk:
                continue
            lead = re.match(r"^((?:by|of|since|with|from|using)\s+)?(.*)$", chunk, re.S)
            prefix, body = lead.group(1) or "", lead.group(2)
            if _is_formula(body):
                if prefix:
                    out.append(text_in_math(prefix))
                out.append(_formula_latex(body, names))
                continue
            out.append(_words_latex(chunk, names))
    return "".join(out)


def _words_latex(text: str, names: dict[str, str]) -> str:
    out, pos = [], 0
    for m in _NAME_RE.finditer(text):
        w = m.group(1)
        if w in names or _looks_like_name(w):
            if m.start() > pos:
                out.append(text_in_math(text[pos:m.start()]))
            out.append(_name_latex(w, names))
            pos = m.end()
    if pos < len(text):
        out.append(text_in_math(text[pos:]))
    return "".join(out)


# ---------------------------------------------------------------------------
# Expressions


def symbol_names(derivation: Any) -> dict[str, str]:
    """Matrix names of a derivation -> their LaTeX (a 1x1 ``L``, the loss, is a scalar: not bold)."""
    import sympy as sp

    from symnet.render.printing import symbol_latex

    names: dict[str, str] = {}
    for chain in getattr(derivation, "chains", ()):
        exprs = [chain.lhs, *(s.expr for s in chain.steps)] + [x for pair in chain.where for x in pair]
        for e in exprs:
            if isinstance(e, sp.Basic):
                for m in e.atoms(sp.MatrixSymbol):
                    names[m.name] = symbol_latex(m.name, bold=not _is_scalar_loss(m))
            elif type(e).__name__ == "Term":  # the author's notation (a .deriv file)
                from symnet.kernel.terms import symbols

                for t in symbols(e):
                    scalar = not t.is_matrix or (t.value == "L" and tuple(t.shape or ()) == (1, 1))
                    names[t.value] = symbol_latex(t.value, bold=not scalar)
    return names


def _is_scalar_loss(m: Any) -> bool:
    return getattr(m, "name", "") == "L" and getattr(m, "shape", None) == (1, 1)


def unbold_scalars(latex: str) -> str:
    """``\\mathbf{L}`` (the loss, stored as 1x1) -> ``L``: scalars are not bold."""
    return re.sub(r"\\mathbf\{L\}(?![A-Za-z])", "L", latex)


def expr_latex(e: Any) -> str:
    from symnet.render.printing import latex

    return unbold_scalars(latex(e))


def expr_text(e: Any) -> str:
    from symnet.render.printing import text

    return text(e)


# ---------------------------------------------------------------------------
# Counterexamples


def _number(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.4g}"
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)


def _rows(v: Any) -> list[list[Any]] | None:
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, list):
        if v and isinstance(v[0], list):
            return v
        return [v]
    return None


def value_text(v: Any) -> str:
    rows = _rows(v)
    if rows is None:
        return _number(v)
    shown_rows = ["[" + ", ".join(_number(x) for x in r[:SHOW_ENTRIES]) + (", ..." if len(r) > SHOW_ENTRIES else "")
                  + "]" for r in rows[:SHOW_ENTRIES]]
    if len(rows) > SHOW_ENTRIES:
        shown_rows.append("...")
    return "[" + ", ".join(shown_rows) + "]" if len(rows) > 1 or (rows and isinstance(v, list) and v
                                                                   and isinstance(v[0], list)) else shown_rows[0]


def value_latex(v: Any) -> str:
    rows = _rows(v)
    if rows is None:
        return _number(v).replace("e", r"\mathrm{e}") if "e" in _number(v) and "n" not in _number(v) else _number(v)
    body = []
    for r in rows[:SHOW_ENTRIES]:
        cells = [_number(x) for x in r[:SHOW_ENTRIES]] + ([r"\cdots"] if len(r) > SHOW_ENTRIES else [])
        body.append(" & ".join(cells))
    if len(rows) > SHOW_ENTRIES:
        body.append(r"\vdots")
    return r"\begin{bmatrix}" + r" \\ ".join(body) + r"\end{bmatrix}"


def counterexample_items(ce: dict) -> list[tuple[str, Any]]:
    """``(label, value)`` pairs: dimensions, the values of the symbols, both sides, the gap."""
    out: list[tuple[str, Any]] = []
    for k, v in (ce.get("dims") or {}).items():
        out.append((str(k), v))
    for k, v in (ce.get("values") or {}).items():
        out.append((str(k), v))
    if "lhs" in ce:
        out.append(("left side", ce["lhs"]))
    if "rhs" in ce:
        out.append(("right side", ce["rhs"]))
    return out


def counterexample_text(ce: dict) -> str:
    return "; ".join(f"{k} = {value_text(v)}" for k, v in counterexample_items(ce))


def counterexample_latex(ce: dict, names: dict[str, str] | None = None) -> str:
    """The counterexample for math mode: ``\\mathbf{A} = \\begin{bmatrix}...``, both sides, the gap."""
    names = names or {}
    from symnet.render.printing import symbol_latex

    parts = []
    for k, v in counterexample_items(ce):
        if k in ("left side", "right side"):
            label = text_in_math(k)
        elif k in names:
            label = names[k]
        else:
            label = symbol_latex(k, bold=_rows(v) is not None) if re.fullmatch(_NAME, k) else text_in_math(k)
        parts.append(f"{label} = {value_latex(v)}")
    return r",\ ".join(parts)


def counterexample_rows(ce: dict, names: dict[str, str] | None = None) -> list[str]:
    """Rows for an ``aligned``/``align*`` block: ``counterexample:`` then one value per row
    (a page-wide row of matrices would push the verdict marks off the page)."""
    rows = [r"&\qquad " + text_in_math("counterexample:")]
    for k, v in counterexample_items(ce):
        rows.append(r"&\qquad\quad " + counterexample_latex(_one(ce, k, v), names))
    return rows


def _one(ce: dict, label: str, value: Any) -> dict:
    if label == "left side":
        return {"lhs": value}
    if label == "right side":
        return {"rhs": value}
    if label in (ce.get("dims") or {}):
        return {"dims": {label: value}}
    return {"values": {label: value}}


# ---------------------------------------------------------------------------
# Derivations


def _step_note(step: Any) -> tuple[str, str] | None:
    """``(verdict, text)`` a reader needs under a step that is not plainly proved."""
    verdict = getattr(step, "verdict", UNPROVED)
    s = shown(step)
    if verdict == PROVED:
        return (PROVED, s) if s != PROVED else None
    detail = _detail(step)
    return verdict, verdict + (f": {detail}" if detail else "")


def _step_note_text(step: Any) -> str:
    note = _step_note(step)
    return f"{mark(note[0])} {note[1]}" if note else ""


def chain_rows(chain: Any, names: dict[str, str], counterexamples: bool = True) -> list[str]:
    """The rows of one chain for an ``aligned`` block: ``lhs &= e && mark reason``, then
    side conditions, refutations with their counterexamples, and the ``where`` lines."""
    rows = []
    if getattr(chain, "title", ""):
        rows.append(r"&" + _words_latex(chain.title, names))
    lhs = expr_latex(chain.lhs)
    for i, step in enumerate(chain.steps):
        left = lhs + " &= " if i == 0 else "&= "
        reason = reason_latex(step.reason, names)
        tail = r" && " + latex_mark(step.verdict) + (r"\ \ " + reason if reason else "")
        rows.append(left + expr_latex(step.expr) + tail)
        note = _step_note(step)
        if note:
            rows.append(r"&\qquad " + latex_mark(note[0]) + r"\ " + text_in_math(note[1]))
        ce = _counterexample(step)
        if ce and counterexamples and step.verdict == REFUTED:
            rows += counterexample_rows(ce, names)
    for k, (sym, e) in enumerate(getattr(chain, "where", ()) or ()):
        head = text_in_math("where ") if k == 0 else r"\phantom{" + text_in_math("where ") + "}"
        rows.append(r"&\qquad " + head + f"{expr_latex(sym)} = {expr_latex(e)}")
    return rows


def chain_aligned(chain: Any, names: dict[str, str]) -> str:
    return "\\begin{aligned}\n" + " \\\\\n".join(chain_rows(chain, names)) + "\n\\end{aligned}"


def derivation_summary(derivation: Any) -> str:
    steps = list(derivation.steps)
    trials = sum(getattr(getattr(s.check, "numeric", None), "trials", 0) or 0 for s in steps)
    return steps_summary(steps, trials)


def derivation_repr_latex(derivation: Any) -> str:
    """Jupyter LaTeX: one ``$$aligned$$`` block per chain, stacked, then notes and the summary."""
    names = symbol_names(derivation)
    out = []
    if derivation.title:
        out.append(r"$$\textbf{" + tex_text(derivation.title) + "}$$")
    for chain in derivation.chains:
        out.append("$$" + chain_aligned(chain, names) + "$$")
    for note in derivation.notes:
        out.append(_plain(note))
    out.append(_plain(derivation_summary(derivation)))
    return "\n".join(out)


def _plain(text: str) -> str:
    """Text outside math in a LaTeX output (no ``$``, which would open math)."""
    return str(text).replace("$", r"\$")


def derivation_markdown(derivation: Any, heading: str = "###") -> str:
    """Markdown: a heading, a ``$$aligned$$`` block per chain (marks in it), notes, the summary."""
    names = symbol_names(derivation)
    out = []
    if derivation.title:
        out += [f"{heading} {mark(derivation.verdict)} {derivation.title}", ""]
    for chain in derivation.chains:
        out += ["$$", chain_aligned(chain, names), "$$", ""]
    for note in derivation.notes:
        out += [note, ""]
    out.append(f"*{derivation_summary(derivation)}*")
    return "\n".join(out) + "\n"


_CSS = ("font-family:inherit;border-collapse:collapse;margin:0.3em 0")


def _verdict_span(verdict: str, text: str | None = None) -> str:
    color = _COLORS.get(verdict, _COLORS[UNPROVED])
    return (f'<span style="color:{color};font-weight:bold" title="{esc(verdict)}">'
            f"{esc(mark(verdict))}</span>" + (f" {esc(text)}" if text else ""))


def _ce_html(ce: dict) -> str:
    items = "".join(f"<li><code>{esc(k)} = {esc(value_text(v))}</code></li>" for k, v in counterexample_items(ce))
    return f"counterexample:<ul>{items}</ul>"


def derivation_html(derivation: Any) -> str:
    """HTML: a table per derivation, one row per step with its mark; failures and counterexamples below it."""
    out = ['<div class="symnet-derivation">']
    if derivation.title:
        out.append(f"<p>{_verdict_span(derivation.verdict)} <strong>{esc(derivation.title)}</strong></p>")
    out.append(f'<table style="{_CSS}">')
    for chain in derivation.chains:
        out.append(_chain_html(chain.title, expr_text(chain.lhs),
                               [(expr_text(s.expr), s) for s in chain.steps],
                               [(expr_text(a), expr_text(b)) for a, b in chain.where]))
    out.append("</table>")
    for note in derivation.notes:
        out.append(f"<p>{esc(note)}</p>")
    out.append(f"<p><em>{esc(derivation_summary(derivation))}</em></p>")
    out.append("</div>")
    return "\n".join(out)


def _chain_html(title: str, lhs: str, steps: list[tuple[str, Any]], where: list[tuple[str, str]],
                locations: list[str] | None = None) -> str:
    rows = []
    if title:
        rows.append(f'<tr><td colspan="5" style="text-align:left"><em>{esc(title)}</em></td></tr>')
    for i, (expr, step) in enumerate(steps):
        loc = f'<td style="color:gray">{esc(locations[i])}</td>' if locations else ""
        left = f"<code>{esc(lhs)}</code>" if i == 0 else ""
        rows.append(
            f'<tr>{loc}<td style="text-align:right">{left}</td><td>=</td>'
            f'<td style="text-align:left"><code>{esc(expr)}</code></td>'
            f'<td style="text-align:left">{esc(step.reason or "")}</td>'
            f'<td style="text-align:left">{_verdict_span(step.verdict, shown(step))}</td></tr>')
        extra = []
        if step.verdict != PROVED and _detail(step):
            extra.append(esc(_detail(step)))
        ce = _counterexample(step)
        if ce and step.verdict == REFUTED:
            extra.append(_ce_html(ce))
        if extra:
            pad = "<td></td>" if locations else ""
            rows.append(f'<tr>{pad}<td></td><td></td><td colspan="3" style="text-align:left">'
                        + "<br/>".join(extra) + "</td></tr>")
    if where:
        pad = "<td></td>" if locations else ""
        defs = ", ".join(f"<code>{esc(a)} = {esc(b)}</code>" for a, b in where)
        rows.append(f'<tr>{pad}<td></td><td></td><td colspan="3" style="text-align:left">where {defs}</td></tr>')
    return "\n".join(rows)


def derivation_repr(derivation: Any) -> str:
    steps = len(derivation.steps)
    return (f"<Derivation {derivation.title!r}: {plural(len(derivation.chains), 'chain')}, "
            f"{plural(steps, 'step')}, {mark(derivation.verdict)} {derivation.verdict}>")


# ---------------------------------------------------------------------------
# Checked files (symnet.notes.checkfile.FileResult)


def file_summary(result: Any) -> str:
    if result.malformed:
        return f"{mark(REFUTED)} malformed, not checked: {result.error}"
    steps = result.steps
    return steps_summary(steps, sum(s.trials for s in steps))


def file_html(result: Any) -> str:
    title = result.title or result.path
    verdict = REFUTED if result.malformed else combine(s.verdict for s in result.steps)
    out = ['<div class="symnet-file">',
           f"<p>{_verdict_span(verdict)} <strong>{esc(title)}</strong> <code>{esc(result.path)}</code></p>"]
    if result.malformed:
        out.append(f"<p><strong>Malformed:</strong> <code>{esc(result.error or '')}</code></p></div>")
        return "\n".join(out)
    shown_d = getattr(result, "shown", None)
    out.append(f'<table style="{_CSS}">')
    for k, chain in enumerate(result.chains):
        built = shown_d.chains[k] if shown_d is not None and k < len(shown_d.chains) else None
        lhs = expr_text(built.lhs) if built is not None else chain.lhs
        exprs = [expr_text(s.expr) for s in built.steps] if built is not None else [s.expr for s in chain.steps]
        out.append(_chain_html(chain.title, lhs, list(zip(exprs, chain.steps)), [],
                               [f"line {s.line}" for s in chain.steps]))
    out.append("</table>")
    out.append(f"<p><em>{esc(file_summary(result))}</em></p></div>")
    return "\n".join(out)


def file_repr_latex(result: Any) -> str:
    """Jupyter LaTeX of a checked file: one ``$$aligned$$`` block per chain, then the summary."""
    title = result.title or result.path
    out = [r"$$\textbf{" + tex_text(title) + "}$$"]
    if result.malformed:
        out.append(_plain(f"Malformed, not checked: {result.error}"))
        return "\n".join(out)
    shown_d = getattr(result, "shown", None)
    if shown_d is not None:
        names = symbol_names(shown_d)
        for chain, checked in zip(shown_d.chains, result.chains):
            out.append("$$" + _file_chain_aligned(chain, checked, names) + "$$")
    else:  # computed in another process: the text of the steps
        for chain in result.chains:
            rows = [(r"\texttt{" + tex_text(chain.lhs) + "} &= " if i == 0 else "&= ")
                    + r"\texttt{" + tex_text(s.expr) + "} && " + latex_mark(s.verdict)
                    + (r"\ \ " + reason_latex(s.reason) if s.reason else "") for i, s in enumerate(chain.steps)]
            out.append("$$\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}$$")
    out.append(_plain(file_summary(result)))
    return "\n".join(out)


def _file_chain_aligned(chain: Any, checked: Any, names: dict[str, str]) -> str:
    """A chain of a checked file, with the verdicts, conditions and counterexamples of its StepResults."""
    rows = chain_rows(_Chain(chain, checked), names)
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


class _Chain:
    """A derivation chain whose steps carry the checker's StepResults (verdict, conditions, counterexample)."""

    def __init__(self, chain: Any, checked: Any):
        self.title = chain.title
        self.lhs = chain.lhs
        self.where = chain.where
        self.steps = [_Step(s, r) for s, r in zip(chain.steps, checked.steps)] if checked is not None \
            else list(chain.steps)


class _Step:
    def __init__(self, step: Any, result: Any):
        self.expr, self.reason, self.check = step.expr, step.reason, step.check
        self.verdict, self.detail = result.verdict, result.detail
        self.counterexample, self.conditions = result.counterexample, result.conditions
        self.shown = result.shown


def file_chain_latex(result: Any, chain_index: int, names: dict[str, str]) -> list[str]:
    """Rows of chain ``chain_index`` of a checked file (for an ``align*`` block)."""
    shown_d = result.shown
    chain = shown_d.chains[chain_index]
    return chain_rows(_Chain(chain, result.chains[chain_index]), names)


def file_repr(result: Any) -> str:
    if result.malformed:
        return f"<FileResult {result.path}: malformed>"
    steps = result.steps
    verdict = combine(s.verdict for s in steps)
    return f"<FileResult {result.path}: {plural(len(steps), 'step')}, {mark(verdict)} {verdict}>"


def file_markdown(result: Any) -> str:
    """Markdown of a checked file: heading, ``$$aligned$$`` blocks, failures with counterexamples."""
    title = result.title or result.path
    verdict = REFUTED if result.malformed else combine(s.verdict for s in result.steps)
    out = [f"### {mark(verdict)} {title}", "", f"`{result.path}`", ""]
    if result.malformed:
        out += [f"**Malformed, not checked:** `{result.error}`", ""]
        return "\n".join(out)
    shown_d = getattr(result, "shown", None)
    if shown_d is not None:
        names = symbol_names(shown_d)
        for chain, checked in zip(shown_d.chains, result.chains):
            out += ["$$", _file_chain_aligned(chain, checked, names), "$$", ""]
    for s in result.steps:
        if s.verdict != PROVED or s.conditions:
            line = f"- line {s.line}: {mark(s.verdict)} **{s.shown}** `{s.expr}`"
            if s.verdict != PROVED and s.detail:
                line += f": {s.detail}"
            out.append(line)
            ce = _counterexample(s)
            if ce and s.verdict == REFUTED:
                out += [f"  - `{k} = {value_text(v)}`" for k, v in counterexample_items(ce)]
    if out[-1] != "":
        out.append("")
    out.append(f"*{file_summary(result)}*")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# Gradient checks (symnet.testing.gradcheck.GradCheckReport)


def _gradcheck_verdict(report: Any) -> str:
    if not report.ok:
        return REFUTED
    return UNPROVED if report.vacuous else PROVED


def _gradcheck_lines(report: Any) -> tuple[str, list[str]]:
    verdict = "passed" if report.ok else "FAILED"
    if report.vacuous:
        verdict += " but VACUOUS (nothing was tested: every gradient and difference is ~0)"
    head = f"Gradient check {verdict}"
    lines = [f"{report.checked} entries checked ({report.resolved} resolved above round-off), "
             f"max abs error {report.max_abs_error:.3g}, max rel error {report.max_rel_error:.3g}, "
             f"{report.kinks} at kinks",
             f"differences in {report.computed_in} (point: {report.dtype}), relative step {report.step:.3g}"]
    if report.taylor is not None:
        lines.append(str(report.taylor))
    for e in report.kink_entries[:5]:
        lines.append(f"kink {e.where}: analytic {e.analytic:.6g} between one-sided {e.forward:.6g} and {e.backward:.6g}")
    for e in report.failures[:20]:
        lines.append(f"mismatch {e}")
    if len(report.failures) > 20:
        lines.append(f"... and {len(report.failures) - 20} more mismatches")
    return head, lines


def gradcheck_html(report: Any) -> str:
    head, lines = _gradcheck_lines(report)
    items = "".join(f"<li>{esc(x)}</li>" for x in lines)
    return (f'<div class="symnet-gradcheck"><p>{_verdict_span(_gradcheck_verdict(report))} '
            f"<strong>{esc(head)}</strong></p><ul>{items}</ul></div>")


def gradcheck_markdown(report: Any) -> str:
    head, lines = _gradcheck_lines(report)
    return f"**{mark(_gradcheck_verdict(report))} {head}**\n\n" + "".join(f"- {x}\n" for x in lines)


def gradcheck_latex(report: Any) -> str:
    head, lines = _gradcheck_lines(report)
    rows = [r"&" + latex_mark(_gradcheck_verdict(report)) + r"\ " + r"\textbf{" + tex_text(head) + "}"]
    rows += [r"&\qquad " + text_in_math(x) for x in lines]
    return "$$\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}$$"


def gradcheck_repr(report: Any) -> str:
    verdict = "passed" if report.ok else "FAILED"
    if report.vacuous:
        verdict += ", VACUOUS"
    return (f"<GradCheckReport {mark(_gradcheck_verdict(report))} {verdict}: {report.checked} entries, "
            f"max rel error {report.max_rel_error:.3g}, {plural(len(report.failures), 'mismatch')}>"
            .replace("mismatchs", "mismatches"))


# ---------------------------------------------------------------------------
# Networks (symnet.networks.composer.Network)


def _network_rows(net: Any) -> list[tuple[str, str, Any, Any]]:
    out = []
    for layer in net.layers:
        out.append((str(layer.index), layer.activation.spec, layer.W.shape, layer.b.shape))
    return out


def network_words(net: Any) -> str:
    """``a 3-4-2 network (tanh, identity)``."""
    acts = [layer.activation.spec for layer in net.layers]
    if len(set(acts)) == 1:
        what = f"{acts[0]} activation" + ("" if len(acts) == 1 else "s")
    else:
        what = "activations " + ", ".join(acts)
    return f"the {'-'.join(str(w) for w in net.widths)} dense network with {what}"


def _shape(shape: Any) -> str:
    return " x ".join(str(s) for s in shape)


def network_html(net: Any) -> str:
    rows = "".join(f"<tr><td>{esc(l)}</td><td><code>h{esc(l)} = {esc(act)}(h{int(l) - 1} W{esc(l)} + b{esc(l)})"
                   f"</code></td><td>W{esc(l)}: {esc(_shape(w))}</td><td>b{esc(l)}: {esc(_shape(b))}</td></tr>"
                   for l, act, w, b in _network_rows(net))
    return (f'<div class="symnet-network"><p><strong>Dense network '
            f"{esc('-'.join(str(w) for w in net.widths))}</strong> (x: 1 x {esc(net.widths[0])}, "
            f"y = h{net.depth})</p><table style=\"{_CSS}\"><tr><th>layer</th><th>computes</th>"
            f"<th>weights</th><th>bias</th></tr>{rows}</table></div>")


def network_latex(net: Any) -> str:
    rows = []
    for sym, e in net.definitions():
        rows.append(f"{expr_latex(sym)} &= {expr_latex(e)}")
    shapes = r",\ ".join(f"{expr_latex(layer.W)} \\in \\mathbb{{R}}^{{{_dim_latex(layer.W.rows)} \\times "
                         f"{_dim_latex(layer.W.cols)}}}" for layer in net.layers)
    rows.append(r"&\qquad " + shapes)
    return "$$\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}$$"


def _dim_latex(d: Any) -> str:
    import sympy as sp

    return sp.latex(d)


def network_markdown(net: Any) -> str:
    return (f"**Dense network {'-'.join(str(w) for w in net.widths)}**\n\n"
            + network_latex(net).replace("$$", "\n$$\n").strip() + "\n")


# ---------------------------------------------------------------------------
# Gradients (symnet.networks.backprop.Gradients)


def gradients_repr(g: Any) -> str:
    return (f"<Gradients of the {g.loss.name} loss for {g.net!r}: "
            f"{', '.join(g.parameters)}>")


def gradients_html(g: Any) -> str:
    return derivation_html(g.derivation)


def gradients_latex(g: Any) -> str:
    return derivation_repr_latex(g.derivation)


def gradients_markdown(g: Any) -> str:
    return derivation_markdown(g.derivation)


# ---------------------------------------------------------------------------
# Collapse results and witnesses (symnet.networks.collapse)


def _witness_lines(w: Any) -> list[tuple[str, Any]]:
    items = [(k, v) for k, v in w.weights.items()]
    items += [(k, v) for k, v in (w.parameters or {}).items()]
    items += [("t", w.t), ("a", w.input_a), ("b", w.input_b),
              ("F(t a + (1-t) b)", w.lhs), ("t F(a) + (1-t) F(b)", w.rhs)]
    return items


def _witness_head(w: Any) -> str:
    return (f"Witness: the two sides differ by {w.gap:.4g} (confirmed at {w.confirmed_digits} digits), "
            "so no affine map computes this network.")


def witness_repr(w: Any) -> str:
    return f"<Witness: F(t a + (1-t) b) and t F(a) + (1-t) F(b) differ by {w.gap:.3g}, t = {w.t:g}>"


def witness_html(w: Any) -> str:
    rows = "".join(f"<tr><td><code>{esc(k)}</code></td><td><code>{esc(value_text(v))}</code></td></tr>"
                   for k, v in _witness_lines(w))
    return (f'<div class="symnet-witness"><p>{_verdict_span(REFUTED)} {esc(_witness_head(w))}</p>'
            f'<table style="{_CSS}">{rows}</table></div>')


def witness_markdown(w: Any) -> str:
    rows = "".join(f"| `{k}` | `{value_text(v)}` |\n" for k, v in _witness_lines(w))
    return f"{mark(REFUTED)} {_witness_head(w)}\n\n| | value |\n|---|---|\n" + rows


def witness_latex(w: Any) -> str:
    from symnet.render.printing import symbol_latex

    rows = [r"&" + text_in_math(_witness_head(w))]
    for k, v in _witness_lines(w):
        label = symbol_latex(k, bold=_rows(v) is not None) if re.fullmatch(_NAME, k) else text_in_math(k)
        rows.append(f"{label} &= {value_latex(v)}")
    return "$$\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}$$"


def _collapse_lines(result: Any) -> list[str]:
    net = result.network
    if result.collapsible:
        return [f"{mark(result.verdict)} Collapsible: y = x W' + b' "
                f"(numeric cross-check: {result.numeric_trials} trials, max abs error "
                f"{result.numeric_max_abs_error:.3g})"]
    out = ["Not collapsible: the network is not one affine map."]
    for s in result.segments:
        out.append(f"affine run, layers {s.first}..{s.last}: {net.h(s.last).name} = "
                   f"{net.h(s.first - 1).name} W + b")
    return out


def collapse_repr(result: Any) -> str:
    what = "collapsible" if result.collapsible else "not collapsible"
    return f"<CollapseResult {result.network!r}: {what}, {mark(result.verdict)} {result.verdict}>"


def collapse_html(result: Any) -> str:
    out = [derivation_html(result.derivation)]
    out.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in _collapse_lines(result)) + "</ul>")
    if result.witness is not None:
        out.append(witness_html(result.witness))
    return '<div class="symnet-collapse">\n' + "\n".join(out) + "\n</div>"


def collapse_latex(result: Any) -> str:
    out = [derivation_repr_latex(result.derivation)]
    if result.collapsible and result.W is not None:
        out.append(f"$$\\mathbf{{W}}' = {expr_latex(result.W)},\\quad \\mathbf{{b}}' = {expr_latex(result.b)}$$")
    out += [_plain(x) for x in _collapse_lines(result)]
    for s in result.segments if not result.collapsible else ():
        out.append(f"$$\\text{{layers {s.first}..{s.last}:}}\\ \\mathbf{{W}} = {expr_latex(s.W)},\\quad "
                   f"\\mathbf{{b}} = {expr_latex(s.b)}$$")
    if result.witness is not None:
        out.append(witness_latex(result.witness))
    return "\n".join(out)


def collapse_markdown(result: Any) -> str:
    out = [derivation_markdown(result.derivation)]
    out += [f"- {x}" for x in _collapse_lines(result)]
    if result.witness is not None:
        out += ["", witness_markdown(result.witness)]
    return "\n".join(out) + "\n"


__all__ = [
    "MARKS", "LATEX_MARKS", "mark", "latex_mark", "shown", "reason_latex", "steps_summary",
    "derivation_html", "derivation_markdown", "derivation_repr_latex", "derivation_repr",
    "file_html", "file_markdown", "file_repr_latex", "file_repr",
    "gradcheck_html", "gradcheck_markdown", "gradcheck_latex", "gradcheck_repr",
    "network_html", "network_latex", "network_markdown", "network_words",
    "gradients_html", "gradients_latex", "gradients_markdown", "gradients_repr",
    "collapse_html", "collapse_latex", "collapse_markdown", "collapse_repr",
    "witness_html", "witness_latex", "witness_markdown", "witness_repr",
]
