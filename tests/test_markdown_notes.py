"""Markdown notes are read as a CommonMark renderer reads them: the checked blocks are the shown ones.

Every ``symnet`` fenced block a renderer shows as code is checked, at any
depth inside blockquotes and lists, with line numbers and columns of the
Markdown file; a ``symnet`` fence a renderer hides (an HTML comment) or does
not show as code (a raw HTML block) is an error; text that only looks like a
fence (an indented code block, a fence inside another fence) is not a block.
"""

from __future__ import annotations

import pytest

from symnet.cli import main
from symnet.notes.checkfile import check_paths, check_text, markdown_source
from symnet.notes.deriv import DerivError

#: A tiny derivation: one true step, then one false step (``B*A``).
DERIVATION = ["matrix A: 2x2, B: 2x2", "  A*B", "= (A*B).T.T", "= B*A"]
FALSE_STEP = 3  # index in DERIVATION of the false step
HEAD = ["# Note", "", "Some text.", ""]

#: (name, lines before the block, prefix of the block's first line, prefix of the other lines)
CONTAINERS = [
    ("top", [], "", ""),
    ("indented-fence", [], "  ", "  "),
    ("blockquote", [], "> ", "> "),
    ("blockquote-no-space", [], ">", ">"),
    ("bullet", [], "- ", "  "),
    ("bullet-star-after-text", ["* item", ""], "  ", "  "),
    ("ordered", [], "1. ", "   "),
    ("ordered-paren-after-text", ["3) item", ""], "   ", "   "),
    ("nested-list", ["- outer"], "  - ", "    "),
    ("nested-list-in-blockquote", ["> - outer"], ">   - ", ">     "),
    ("blockquote-in-list", [], "- > ", "  > "),
    ("blockquote-in-blockquote", [], "> > ", "> > "),
    ("tab-in-blockquote", [], ">\t", ">\t"),
]

#: (name, opening fence, closing fence or None for unclosed)
FENCES = [
    ("backticks", "```symnet", "```"),
    ("tildes", "~~~symnet", "~~~"),
    ("long-backticks", "`````symnet", "`````"),
    ("long-closing", "```symnet", "``````"),
    ("info-words", "``` symnet Title of the block", "```"),
    ("tildes-info-words", "~~~~ symnet {.x}", "~~~~"),
    ("unclosed", "```symnet", None),
]


def note(container, fence, newline="\n"):
    """A note with one symnet block; returns (text, 1-based line of the false step)."""
    _, before, first, rest = container
    _, opening, closing = fence
    block = [opening, *DERIVATION] + ([closing] if closing is not None else [])
    lines = HEAD + before + [first + block[0]] + [rest + line for line in block[1:]]
    false_line = len(HEAD) + len(before) + 1 + FALSE_STEP + 1
    if closing is not None:
        lines += ["", "After the block."]
    return newline.join(lines) + newline, false_line


def assert_checked(text, false_line):
    result = check_text(text, "note.md", markdown=True)
    assert result.error is None, result.error
    assert result.title == "Note"
    assert [s.verdict for s in result.chains[0].steps] == ["proved", "refuted"]
    step = result.chains[0].steps[1]
    assert step.line == false_line
    # the column points at the '=' of the Markdown file's line
    line = text.replace("\r\n", "\n").split("\n")[false_line - 1]
    assert line[step.col - 1] == "="
    assert not result.ok
    return result


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("fence", FENCES, ids=[f[0] for f in FENCES])
@pytest.mark.parametrize("container", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_shown_blocks_are_checked_where_they_are(container, fence, newline):
    text, false_line = note(container, fence, newline)
    assert_checked(text, false_line)
    source, title, blocks = markdown_source(text)
    assert blocks == 1 and title == "Note"
    assert len(source.split("\n")) == len(text.replace("\r\n", "\n").split("\n"))


@pytest.mark.parametrize("container", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_container_prefix_becomes_spaces(container):
    text, false_line = note(container, FENCES[0])
    source = markdown_source(text)[0].split("\n")
    original = text.split("\n")[false_line - 1]
    assert len(source[false_line - 1]) == len(original)
    assert source[false_line - 1].strip() == "= B*A"
    assert ">" not in "".join(source) and "-" not in "".join(source)


def test_only_block_inside_a_list_is_not_all_proved(tmp_path, capsys):
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\n- a claim:\n\n  ```symnet\n  matrix A: 2x2, B: 2x2\n"
                    "    A*B\n  = B*A\n  ```\n", encoding="utf-8")
    report = check_paths([str(path)])
    assert report.exit_code == 1
    (result,) = report.files
    assert len(result.steps) == 1 and result.steps[0].verdict == "refuted" and result.steps[0].line == 8
    code = main(["check", str(path)])
    out = capsys.readouterr().out
    assert code == 1 and "all proved" not in out and "refuted" in out


def test_directory_search_finds_blocks_inside_containers(tmp_path):
    (tmp_path / "quote.md").write_text("> ```symnet\n> scalar a\n> a = a\n> ```\n", encoding="utf-8")
    (tmp_path / "plain.md").write_text("    ```symnet\n    scalar a\n    ```\n", encoding="utf-8")
    report = check_paths([str(tmp_path)])
    assert [f.path.rsplit("/", 1)[-1] for f in report.files] == ["quote.md"]
    assert report.exit_code == 0


# ---------------------------------------------------------------------------
# Text that is code but not a symnet block: not checked, no error

NOT_BLOCKS = {
    "indented-code-block": "# Note\n\n    ```symnet\n    scalar a\n    a = a + 1\n    ```\n",
    "indented-code-block-in-blockquote": "> para\n>\n>     ```symnet\n>     a = a + 1\n>     ```\n",
    "fence-inside-backtick-fence": "````markdown\n```symnet\nscalar a\na = a + 1\n```\n````\n",
    "fence-inside-tilde-fence": "~~~\n```symnet\nscalar a\na = a + 1\n```\n~~~\n",
    "fence-inside-fence-in-list": "- ````md\n  ```symnet\n  a = a + 1\n  ```\n  ````\n",
    "other-language": "```python\nscalar a\na = a + 1\n```\n",
    "symnet-not-first-word": "``` python symnet\na = a + 1\n```\n",
    "inline-code-span": "text ```symnet a = a + 1``` more\n",
    "backtick-in-info": "```symnet `x`\na = a + 1\n```\n",
    "deep-lazy-paragraph-line": "para\n    ```symnet\n",
}


@pytest.mark.parametrize("text", NOT_BLOCKS.values(), ids=NOT_BLOCKS.keys())
def test_code_that_only_looks_like_a_block_is_not_checked(text):
    source, _, blocks = markdown_source(text)
    assert blocks == 0 and source.strip() == ""
    result = check_text(text, "note.md", markdown=True)
    assert result.error is None and result.steps == []


def test_fence_inside_fence_keeps_the_outer_block_only():
    text = "```symnet\nscalar a\n````markdown\n```\n\n```symnet\na = a\n```\n"
    # the inner '```' closes the symnet block; '````markdown' inside it is content (and malformed)
    source, _, blocks = markdown_source(text)
    assert blocks == 2
    assert source.split("\n")[1:3] == ["scalar a", "````markdown"]


# ---------------------------------------------------------------------------
# symnet fences a renderer hides or does not show as code: errors

HIDDEN = {
    # name: (text, line of the hidden fence, column, "comment" or "html")
    "html-comment": ("# Note\n\n<!--\n```symnet\ndefine B = A\n```\n-->\n", 4, 1, "comment"),
    "html-comment-one-line-open": ("<!-- hidden:\n~~~ symnet\nscalar a\n~~~ -->\n", 2, 1, "comment"),
    "html-comment-in-blockquote": ("> <!--\n> ```symnet\n> scalar a\n> ```\n> -->\n", 2, 3, "comment"),
    "html-comment-in-list": ("- <!--\n  ```symnet\n  scalar a\n  ```\n  -->\n", 2, 3, "comment"),
    "html-comment-crlf": ("<!--\r\n\r\n```symnet\r\nscalar a\r\n```\r\n-->\r\n", 3, 1, "comment"),
    "details-without-blank-lines": ("<details>\n```symnet\nscalar a\n```\n</details>\n", 2, 1, "html"),
    "div": ("<div>\n  ```symnet\nscalar a\n```\n</div>\n", 2, 3, "html"),
    "pre": ("<pre>\n\n```symnet\nscalar a\n```\n</pre>\n", 3, 1, "html"),
}


@pytest.mark.parametrize("case", HIDDEN.values(), ids=HIDDEN.keys())
def test_hidden_block_is_an_error(case):
    text, line, col, kind = case
    with pytest.raises(DerivError) as info:
        markdown_source(text, path="note.md")
    assert (info.value.line, info.value.col) == (line, col)
    result = check_text(text, "note.md", markdown=True)
    assert result.malformed and result.steps == []
    assert (result.error_line, result.error_col) == (line, col)
    if kind == "comment":
        assert result.error.startswith(f"note.md:{line}:{col}: a symnet block inside an HTML comment is hidden")
    else:
        assert result.error.startswith(f"note.md:{line}:{col}: a symnet block inside a raw HTML block")


def test_hidden_define_cannot_make_a_visible_claim_proved():
    text = ("# Note\n\n<!--\n```symnet\nmatrix A: 2x2, B: 2x2\ndefine C = A\n```\n-->\n\n"
            "```symnet\n  C\n= A\n```\n")
    result = check_text(text, "note.md", markdown=True)
    assert result.malformed and not result.ok and result.error_line == 4


def test_details_with_blank_lines_is_shown_as_code_and_checked():
    # markdown-it ends the HTML block at the blank line: the fence is a real code block
    text = "# Note\n\n<details>\n<summary>Proof</summary>\n\n```symnet\n" + "\n".join(DERIVATION) + "\n```\n\n</details>\n"
    assert_checked(text, 6 + FALSE_STEP + 1)


def test_hidden_block_directory_search_reports_it(tmp_path):
    (tmp_path / "hidden.md").write_text("<!--\n```symnet\nscalar a\n```\n-->\n", encoding="utf-8")
    report = check_paths([str(tmp_path)])
    assert [f.path.rsplit("/", 1)[-1] for f in report.files] == ["hidden.md"]
    assert report.exit_code == 2


def test_block_nested_too_deep_for_the_parser_is_an_error():
    prefix = "> " * 25
    text = f"{prefix}```symnet\n{prefix}scalar a\n{prefix}a = a + 1\n{prefix}```\n"
    with pytest.raises(DerivError) as info:
        markdown_source(text, path="note.md")
    assert info.value.line == 1 and "nested too deeply" in info.value.message
    shallow = "> " * 5
    text = f"{shallow}```symnet\n{shallow}scalar a\n{shallow}a = a + 1\n{shallow}```\n"
    result = check_text(text, "note.md", markdown=True)
    assert [s.verdict for s in result.steps] == ["refuted"] and result.steps[0].line == 3


# ---------------------------------------------------------------------------
# Titles and line endings


@pytest.mark.parametrize("text, title", [
    ("# Title #\n", "Title"),
    ("Setext title\n============\n\n# Later\n", "Setext title"),
    ("Sub\n---\n", "Sub"),
    ("```\n# not a heading\n```\n\n## Real\n", "Real"),
    ("<!-- # not a heading -->\n\n### Third\n", "Third"),
    ("no heading\n", ""),
], ids=["atx", "setext", "setext-2", "heading-in-fence", "heading-in-comment", "none"])
def test_title_is_the_first_heading(text, title):
    assert markdown_source(text)[1] == title


def test_lone_carriage_returns_are_line_breaks_as_for_the_parser():
    text = "# T\r\r```symnet\rmatrix A: 2x2, B: 2x2\r  A*B\r= B*A\r```\r"
    result = check_text(text, "note.md", markdown=True)
    assert [(s.line, s.verdict) for s in result.steps] == [(6, "refuted")]
    assert result.source_line(6) == "= B*A"
