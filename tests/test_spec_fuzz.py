"""Fuzzing the parsers: any input ends in a result or a one-line SymnetError with a location.

Hypothesis generates arbitrary text and bytes, and near-miss inputs built from
the grammar's own tokens, for the derivation-file parser (``symnet.notes.deriv``,
``symnet.notes.checkfile``), the activation-spec parser
(``symnet.networks.activations.parse_spec``) and ``Network.dense``.  Never another
exception, never a hang (each example is timed), never code execution (a
marker file is never created).  Well-formed random derivations go on to the
kernel, whose verdicts on them are checked by the independent judge of
``tests/soundness.py``.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symnet import Network
from symnet.errors import SpecError, SymnetError
from symnet.networks.activations import CATALOGUE, parse_spec
from symnet.notes.checkfile import check_parsed, check_text, markdown_source
from symnet.notes.deriv import DerivError, decode, parse

from .soundness import differs

#: A hang guard, not a speed test (parsing is milliseconds; the kernel has its own budgets;
#: time is measured by the benchmark, never asserted).
PARSE_SECONDS = 120.0
MARKER_DIR = Path(tempfile.mkdtemp(prefix="symnet-fuzz-"))
MARKER = MARKER_DIR / "PWNED"
LOCATED = re.compile(r"^fuzz\.deriv:\d+:\d+: \S")



def fuzz(max_examples: int) -> settings:
    """The profile's settings (derandomized in CI), no deadline, a bounded number of examples."""
    return settings(deadline=None, max_examples=max_examples,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def parse_or_error(text: str):
    """The parsed file, or the DerivError; anything else fails the test."""
    start = time.monotonic()
    try:
        result = parse(text, "fuzz.deriv")
    except DerivError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert LOCATED.match(message), message
        assert exc.line >= 1 and exc.col >= 1
        result = exc
    assert time.monotonic() - start < PARSE_SECONDS
    assert not MARKER.exists()
    return result


# ---------------------------------------------------------------------------
# Derivation files: arbitrary text


@fuzz(300)
@given(st.text(max_size=400))
def test_arbitrary_text_parses_or_fails_with_a_location(text):
    parse_or_error(text)


@fuzz(150)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_or_fail_with_a_location(data):
    try:
        text = decode(data, "fuzz.deriv")
    except DerivError as exc:
        assert LOCATED.match(str(exc)) and "\n" not in str(exc)
        return
    parse_or_error(text)


# ---------------------------------------------------------------------------
# Derivation files: near misses built from the grammar's tokens

PAYLOADS = [
    f"__import__('os').system('touch {MARKER}')",
    f"open('{MARKER}', 'w')",
    f"eval(\"open('{MARKER}', 'w')\")",
    "exec", "__builtins__", "().__class__.__bases__[0]", "lambda: 0", "[x for x in A]", "f'{A}'",
    "A.__dict__", "A[0]", "A if a else B", "not A", "A == B", "A < B", "a and b", "*A", "...",
    "A // B", "A % B", "~A", "A << 2", "(q := A)", "yield A", "await A", "{A: B}", "(A, B)",
]
DECLARATIONS = [
    "matrix A: 2x2, B: 2x2, C: 2x3", "matrix u: 1x2, v: 1x2", "matrix x: 1 x n, W: n x m",
    "scalar a, z", "scalar b", "dim n, m", "function f", "define h = A*B + A", "define s = a*z",
    "define g = tanh(u)", "matrix A: 2x2", "matrix Q: 0x2", "matrix Q: 2x", "dim 3", "scalar A",
    "matrix R: 1000001x2", "function tanh", "define = A", "matrix: 2x2",
]
TOKENS = [
    "A", "B", "C", "u", "v", "x", "W", "a", "z", "b", "n", "m", "f", "h", "s", "g", "q",
    "tanh", "sigmoid", "relu", "exp", "log", "sqrt", "abs", "hadamard", "diff", "ones", "zeros",
    "eye", "trace", "affine", "leaky_relu", "softplus", "step",
    "+", "-", "*", "/", "**", "@", ".T", "(", ")", ",", " ", "=", "0", "1", "2", "0.5", "1e3",
    "64", "65", "100", "1e400", "10**100", "# c", " by a reason", "×", "\t",
]


_LEAVES = ["A", "B", "C", "eye(2)", "ones(2, 2)", "zeros(2, 2)"]


def matrix_texts(depth: int):
    leaves = st.sampled_from(_LEAVES)
    if depth == 0:
        return leaves
    sub = matrix_texts(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "@"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda e: f"({e}).T"),
        st.tuples(st.sampled_from(["2", "a", "-1", "0.5", "a**2"]), sub).map(lambda t: f"{t[0]}*{t[1]}"),
        st.tuples(sub, sub).map(lambda t: f"hadamard({t[0]}, {t[1]})"),
        st.tuples(st.sampled_from(["tanh", "sigmoid", "relu", "exp", "f"]), sub).map(lambda t: f"{t[0]}({t[1]})"),
        sub.map(lambda e: f"({e})**2"),
    )


def scalar_texts(depth: int):
    leaves = st.sampled_from(["a", "z", "1", "2", "0.5", "trace(A)", "trace(A*B)", "trace(B*A)"])
    if depth == 0:
        return leaves
    sub = scalar_texts(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["tanh", "sigmoid", "exp", "softplus", "f"]), sub).map(lambda t: f"{t[0]}({t[1]})"),
        sub.map(lambda e: f"diff({e}, z)"),
        sub.map(lambda e: f"({e})**2"),
    )


HEADER = "matrix A: 2x2, B: 2x2, C: 2x2\nscalar a, z\nfunction f\n"


@st.composite
def token_soup(draw):
    lines = draw(st.lists(st.sampled_from(DECLARATIONS), max_size=4))
    for _ in range(draw(st.integers(1, 4))):
        tokens = draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14))
        if draw(st.booleans()):
            tokens.insert(draw(st.integers(0, len(tokens))), draw(st.sampled_from(PAYLOADS)))
        prefix = draw(st.sampled_from(["", "  ", "= ", "  = "]))
        lines.append(prefix + "".join(tokens))
    return "\n".join(lines) + "\n"


@st.composite
def well_formed(draw):
    """A derivation that parses: the header, then chains of random well-typed expressions."""
    lines = [HEADER.rstrip("\n")]
    for _ in range(draw(st.integers(1, 3))):
        exprs = draw(st.one_of(st.lists(matrix_texts(2), min_size=2, max_size=3),
                               st.lists(scalar_texts(2), min_size=2, max_size=3)))
        lines.append("  " + exprs[0])
        lines += ["= " + e + draw(st.sampled_from(["", "   by a reason", "  # a comment"])) for e in exprs[1:]]
    return "\n".join(lines) + "\n"


@st.composite
def corrupted(draw, text):
    """``text`` with a few slips: a token inserted (possibly a payload), a slice deleted, a character replaced."""
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace", "payload"]))
        if how == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif how == "payload":
            text = text[:i] + draw(st.sampled_from(PAYLOADS)) + text[i:]
        elif how == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 6)):]
        else:
            text = text[:i] + draw(st.characters(codec="utf-8")) + text[i + 1:]
    return text


def near_misses():
    """Token soup, well-formed files, and well-formed files with a few slips."""
    return st.one_of(token_soup(), well_formed(), well_formed().flatmap(corrupted))


@fuzz(300)
@given(near_misses())
def test_near_miss_files_parse_or_fail_with_a_location(text):
    parse_or_error(text)


@contextlib.contextmanager
def short_kernel_budgets():
    """Budgets of a second: a shorter budget only ever turns a proof into ``unproved``."""
    import gc

    import symnet.kernel as kernel

    saved = kernel.STEP_BUDGET, kernel.scalar_is_zero
    original = kernel.scalar_is_zero
    kernel.STEP_BUDGET = 2.0
    kernel.scalar_is_zero = lambda d, budget=0.5: original(d, min(budget, 0.5))
    enabled = gc.isenabled()
    gc.disable()  # an alarm inside a gc callback is lost (see test_hostile.py)
    try:
        yield
    finally:
        kernel.STEP_BUDGET, kernel.scalar_is_zero = saved
        if enabled:
            gc.enable()


@fuzz(50)
@given(st.one_of(well_formed(), well_formed().flatmap(corrupted)))
def test_near_miss_files_that_parse_are_checked_without_an_exception(text):
    parsed = parse_or_error(text)
    if isinstance(parsed, DerivError):
        return
    with short_kernel_budgets():
        start = time.monotonic()
        result = check_parsed(parsed, trials=1)
        assert time.monotonic() - start < 240  # a hang guard
    if result.malformed:
        assert LOCATED.match(result.error), result.error
    for step in result.steps:
        assert step.verdict in ("proved", "refuted", "unproved")


# ---------------------------------------------------------------------------
# Well-formed random derivations: the kernel's verdicts, judged independently

@fuzz(40)
@given(st.one_of(st.tuples(matrix_texts(3), matrix_texts(3)), st.tuples(scalar_texts(3), scalar_texts(3))))
def test_random_steps_get_a_verdict_and_proved_ones_are_true(pair):
    lhs, rhs = pair
    text = HEADER + f"{lhs} = {rhs}\n{lhs} = {lhs}\n"
    parsed = parse_or_error(text)
    if isinstance(parsed, DerivError):
        return  # a size limit, say: refused with a place
    with short_kernel_budgets():
        result = check_parsed(parsed, trials=2)
    if result.malformed:
        assert LOCATED.match(result.error), result.error
        return
    definitions = {d.symbol: d.expr for d in parsed.definitions}
    for chain, checked in zip(parsed.chains, result.chains):
        (step,) = checked.steps
        if step.verdict == "proved":
            assert differs(chain.lhs, chain.steps[0].expr, definitions) is not True, \
                f"proved but false: {chain.text} = {chain.steps[0].text}"


# ---------------------------------------------------------------------------
# Markdown and the command line


@fuzz(50)
@given(st.lists(st.one_of(st.sampled_from(["```symnet", "```", "~~~symnet", "~~~", "````symnet", "# Title",
                                           "```python", "    ```symnet"]),
                          near_misses()), max_size=8))
def test_markdown_fences_never_break_the_reader(pieces):
    text = "\n".join(pieces)
    source, title, blocks = markdown_source(text)
    assert source.count("\n") == text.replace("\r\n", "\n").count("\n")  # line numbers are kept
    result = check_text(text, "fuzz.md", markdown=True, trials=1) if blocks == 0 else None
    if result is not None:
        assert not result.steps
    parse_or_error(source)


@fuzz(25)
@given(st.one_of(st.binary(max_size=300), near_misses().map(lambda s: s.encode())))
def test_the_command_line_exits_0_1_or_2_with_one_line_per_malformed_file(data):
    from symnet.cli import main

    path = MARKER_DIR / "case.deriv"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with short_kernel_budgets(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", "--trials", "1", str(path)])
    assert code in (0, 1, 2)
    lines = err.getvalue().splitlines()
    assert len(lines) == (1 if code == 2 else 0), lines
    if code == 2:
        assert lines[0].startswith(f"symnet: error: {path}")
    assert not MARKER.exists()


# ---------------------------------------------------------------------------
# Activation specs and network construction

NAMES = sorted(CATALOGUE) + ["softmax", "Tanh", "TANH", "", "relu6", "__import__", "eval"]
VALUES = ["2", "-1", "0", "1/2", "1/0", "0.01", "1e-3", "1e999", "-", "", "a", "z", "nan", "inf", "x y",
          "1/2/3", "((1))", "1_000", "٣", "0x10", "1e", "--1", "c=2", f"__import__('os').system('touch {MARKER}')"]


@st.composite
def near_miss_specs(draw):
    name = draw(st.sampled_from(NAMES))
    if draw(st.booleans()):
        return name
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        value = draw(st.sampled_from(VALUES))
        if draw(st.booleans()):
            key = draw(st.sampled_from(["a", "c", "alpha", "beta", "scale", "q", "", "a b"]))
            parts.append(f"{key}={value}")
        else:
            parts.append(value)
    close = draw(st.sampled_from([")", "", "))", ")("]))
    return f"{name}({', '.join(parts)}{close}"


def spec_or_error(spec):
    try:
        bound = parse_spec(spec)
    except SymnetError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        # the place: the spec itself, or the activation or parameter it names
        assert "activation" in message or "parameter" in message, message
        return exc
    assert bound.record.name in CATALOGUE
    assert bound.body is not None  # the formula can be built
    return bound


@fuzz(300)
@given(st.one_of(st.text(max_size=250), near_miss_specs()))
def test_activation_specs_parse_or_fail_with_one_line(spec):
    spec_or_error(spec)
    assert not MARKER.exists()


@fuzz(40)
@given(st.one_of(st.integers(), st.floats(), st.none(), st.booleans(), st.binary(max_size=5), st.lists(st.text())))
def test_non_string_specs_are_refused(spec):
    with pytest.raises(SymnetError):
        parse_spec(spec)


WIDTHS = st.one_of(st.integers(-3, 1100), st.sampled_from(["3", "n", "n0", " 4 ", "1e3", "x y", "", "-2", "__class__",
                                                           "n-1", "٣"]),
                   st.floats(allow_nan=True), st.none(), st.booleans())


@fuzz(200)
@given(st.lists(WIDTHS, max_size=6), st.one_of(near_miss_specs(), st.lists(near_miss_specs(), max_size=6)))
def test_network_dense_builds_or_fails_with_one_line_naming_the_place(widths, specs):
    try:
        net = Network.dense(widths, specs)
    except SymnetError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        assert re.match(r"^(layer \d+: |width \d+ |widths |a network |\d+ activations |depth )", message) \
            or "activation" in message, message
        return
    assert net.depth == len(widths) - 1
    assert not MARKER.exists()


def test_a_parameter_named_like_the_variable_is_refused():
    # 'affine(a=z, c=0)' would otherwise compute z**2 under the name affine
    with pytest.raises(SpecError, match="variable of the formula"):
        parse_spec("affine(a=z, c=0)")
