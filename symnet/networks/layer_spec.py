"""The layer grammar of the command line: ``conv1d(k=3) > batchnorm > relu > linear(2)``.

::

    net   := layer ('>' layer)*
    layer := name ['(' arg (',' arg)* ')']
    arg   := [key '='] value  |  net            (a residual block's layers)
    value := integer | decimal | true | false | '(' integer ',' integer ')'

Layers: ``linear(out)``, ``conv1d(k, out, stride, padding, dilation, bias)``, ``conv2d(...)``,
``convtranspose1d(k, out, stride, padding)``, ``avgpool1d(k, stride)``, ``avgpool2d``,
``maxpool1d``, ``maxpool2d``, ``batchnorm`` (``batchnorm(training)`` for batch
statistics), ``layernorm``, ``dropout``, ``flatten``, ``reshape(d1, d2, ...)``,
``residual(layer > layer ...)``, ``embedding(vocabulary, dim)``, ``attention``, and any
activation of the catalogue (``relu``, ``tanh``, ...).  Read by a tokenizer of its own
(never ``eval``); an error names the column.
"""

from __future__ import annotations

import re
from fractions import Fraction

from symnet.errors import ShapeError, SpecError
from symnet.networks import layers as L

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:e-?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[()>,=]))")


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                col = len(text) - len(text[pos:].lstrip()) + 1
                raise SpecError(f"column {col}: unexpected {text[col - 1]!r}")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind), m.start(kind) + 1))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text) + 1)

    def take(self, value: str | None = None, kind: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            want = repr(value) if value is not None else {"name": "a layer name", "num": "a number"}[kind]
            got = "the end" if tok[0] == "end" else repr(tok[1])
            raise SpecError(f"column {tok[2]}: expected {want}, got {got}")
        self.i += 1
        return tok


_LAYERS = {
    "linear": (L.Linear, ["out", "bias"]),
    "conv1d": (L.Conv1d, ["k", "out_channels", "stride", "padding", "dilation", "bias"]),
    "conv2d": (L.Conv2d, ["k", "out_channels", "stride", "padding", "dilation", "bias"]),
    "convtranspose1d": (L.ConvTranspose1d, ["k", "out_channels", "stride", "padding", "bias"]),
    "avgpool1d": (L.AvgPool1d, ["k", "stride"]),
    "avgpool2d": (L.AvgPool2d, ["k", "stride"]),
    "maxpool1d": (L.MaxPool1d, ["k", "stride"]),
    "maxpool2d": (L.MaxPool2d, ["k", "stride"]),
    "batchnorm": (L.BatchNorm, ["eps", "training"]),
    "layernorm": (L.LayerNorm, ["eps"]),
    "dropout": (L.Dropout, ["p"]),
    "flatten": (L.Flatten, []),
    "embedding": (L.Embedding, ["vocabulary", "dim"]),
    "attention": (L.Attention, ["d_k"]),
}
_ALIASES = {"out": "out_channels", "channels": "out_channels"}


def parse_layers(text: str) -> list[L.Layer]:
    """The layers of ``text`` (see the module doc); SpecError naming the column."""
    reader = _Reader(text)
    layers = _net(reader)
    tok = reader.peek()
    if tok[0] != "end":
        raise SpecError(f"column {tok[2]}: expected '>' or the end, got {tok[1]!r}")
    return layers


def _net(r: _Reader) -> list[L.Layer]:
    out = [_layer(r)]
    while r.peek()[1] == ">":
        r.take(">")
        out.append(_layer(r))
    return out


def _layer(r: _Reader) -> L.Layer:
    _, name, col = r.take(kind="name")
    key = name.lower()
    if key == "residual":
        r.take("(")
        block = _net(r)
        r.take(")")
        return L.Residual(block)
    positional, named = [], {}
    if r.peek()[1] == "(":
        r.take("(")
        while True:
            tok = r.peek()
            if tok[0] == "name" and r.i + 1 < len(r.tokens) and r.tokens[r.i + 1][1] == "=":
                r.take(kind="name")
                r.take("=")
                named[_ALIASES.get(tok[1], tok[1])] = (_value(r), tok[2])
            else:
                positional.append((_value(r), tok[2]))
            if r.peek()[1] == ",":
                r.take(",")
                continue
            r.take(")")
            break
    try:
        return _build(key, name, col, positional, named)
    except (SpecError, ShapeError, TypeError) as exc:
        message = str(exc)
        if message.startswith("column "):
            raise
        raise SpecError(f"column {col}: {name}: {message}") from None


def _value(r: _Reader):
    tok = r.peek()
    if tok[1] == "(":
        r.take("(")
        a = _value(r)
        r.take(",")
        b = _value(r)
        r.take(")")
        return (a, b)
    if tok[0] == "num":
        r.take()
        if re.fullmatch(r"\d+", tok[1]):
            return int(tok[1])
        return float(Fraction(tok[1]))
    if tok[0] == "name" and tok[1].lower() in ("true", "false", "training"):
        r.take()
        return tok[1].lower() != "false"
    got = "the end" if tok[0] == "end" else repr(tok[1])
    raise SpecError(f"column {tok[2]}: expected a value, got {got}")


def _build(key: str, name: str, col: int, positional: list, named: dict) -> L.Layer:
    if key == "reshape":
        return L.Reshape(tuple(v for v, _ in positional))
    if key not in _LAYERS:
        from symnet.networks.activations import parse_spec

        if positional or named:
            raise SpecError("an activation takes its parameters as name(alpha=...) in --activation")
        try:
            parse_spec(key)
        except SpecError:
            raise SpecError(f"column {col}: unknown layer {name!r}") from None
        return L.Activation(key)
    cls, fields = _LAYERS[key]
    if key == "batchnorm" and positional and positional[0][0] is True:
        positional, named = [], {**named, "training": (True, positional[0][1])}
    if len(positional) > len(fields):
        raise SpecError(f"column {positional[len(fields)][1]}: {name} takes at most {len(fields)} values")
    kwargs = {f: v for f, (v, _) in zip(fields, positional)}
    for k, (v, c) in named.items():
        if k not in fields:
            raise SpecError(f"column {c}: {name} has no option {k!r} (options: {', '.join(fields) or 'none'})")
        kwargs[k] = v
    return cls(**kwargs)


def parse_shape(text: str) -> tuple[int, ...]:
    """``1x8``, ``3x6x6`` or ``4``: an example's shape."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise SpecError(f"input shape {text!r}: expected sizes like 1x8 or 3x6x6") from None
    if any(d < 1 for d in shape):
        raise SpecError(f"input shape {text!r}: sizes must be at least 1")
    return shape
