"""Collapse of layer networks: checked derivations, the collapsed map, witnesses, the grammar.

References independent of the collapse: the layer network's own forward pass
(``layer_numeric``) and, where installed, the PyTorch module a network came from.
"""

from __future__ import annotations

import numpy as np
import pytest

import symnet
from symnet.cli import main
from symnet.kernel import Context
from symnet.kernel import terms as T
from symnet.networks import layer_numeric as LN
from symnet.networks.layer_algebra import (
    batchnorm_fold_chain,
    collapse_layers,
    composed_kernel,
    conv_matrix,
)
from symnet.networks.layer_spec import parse_layers
from symnet.networks.layers import (
    Activation,
    AvgPool1d,
    BatchNorm,
    Conv1d,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool1d,
    Residual,
    Sequential,
)

AFFINE = [
    ([Conv1d(k=3), Conv1d(k=2)], (1, 8)),
    ([Conv1d(k=3, out_channels=2), Conv1d(k=2, out_channels=3), Flatten(), Linear(2)], (2, 7)),
    ([Conv2d(k=2), Conv2d(k=2, out_channels=2)], (1, 4, 4)),
    ([Conv1d(k=3), BatchNorm(), Conv1d(k=3), Flatten(), Linear(2)], (1, 8)),
    ([Linear(3), BatchNorm(), Residual([Linear(3)]), Linear(2)], (4,)),
    ([Conv1d(k=2, stride=2, padding=1), AvgPool1d(k=2), Dropout(), Flatten(), Linear(3)], (2, 9)),
    ([Residual([Linear(4), Linear(4)]), Linear(1)], (4,)),
    ([Linear(3), Residual([Residual([Linear(3)]), Linear(3)]), Linear(1)], (2,)),
    ([Linear(12), Linear(12), Linear(12), Linear(12), Linear(12), Linear(12), Linear(12), Linear(12), Linear(12),
      Linear(12), Linear(12), Linear(2)], (3,)),
]
NONAFFINE = [
    ([Conv1d(k=3), Activation("relu"), Linear(2)], (1, 8)),
    ([Linear(4), LayerNorm(), Linear(2)], (3,)),
    ([Conv1d(k=2), MaxPool1d(k=2)], (1, 8)),
    ([Linear(3), BatchNorm(training=True)], (3,)),
    ([Residual([Linear(3), Activation("tanh")])], (3,)),
]


@pytest.mark.parametrize("layers,shape", AFFINE, ids=lambda v: str(v))
def test_an_affine_network_collapses_with_every_step_proved(layers, shape):
    net = Sequential(layers, shape)
    result = symnet.collapse(net)
    assert result.collapsible and result.derivation.ok and result.ok, result.to_text()
    x = np.random.default_rng(3).normal(size=(6, *shape))
    assert np.allclose(result.function()(x), LN.forward(net, x, result.weights), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layers,shape", NONAFFINE, ids=lambda v: str(v))
def test_a_nonaffine_network_gets_a_witness_that_holds_when_recomputed(layers, shape):
    net = Sequential(layers, shape)
    result = collapse_layers(net)
    assert not result.collapsible and result.witness is not None
    w = result.witness
    f = lambda x: LN.forward(net, x, w.weights)  # noqa: E731 - inputs are batches
    gap = np.max(np.abs(f(w.t * w.input_a + (1 - w.t) * w.input_b) - (w.t * f(w.input_a) + (1 - w.t) * f(w.input_b))))
    assert gap > 1e-6 and abs(gap - w.gap) <= 1e-9 * max(1.0, gap)
    with pytest.raises(symnet.SymnetError):
        result.function()


def test_network_of_layers_is_a_sequential():
    net = symnet.Network([Conv1d(k=3), Flatten(), Linear(2)], input_shape=(1, 6))
    assert isinstance(net, Sequential) and net.output_shape == (2,)


@pytest.mark.parametrize("c_in,c_mid,c_out,k1,k2", [(1, 1, 1, 3, 2), (2, 3, 2, 2, 2), (1, 2, 1, 3, 3)])
def test_two_convolutions_are_one_with_the_convolved_kernel(c_in, c_mid, c_out, k1, k2):
    first, second = Conv1d(k=k1, out_channels=c_mid), Conv1d(k=k2, out_channels=c_out)
    shape = (c_in, 7)
    layer, composed = composed_kernel(first, second, shape, "K1", "K2")
    assert layer.k == k1 + k2 - 1
    M1 = conv_matrix(first, shape, "K1")
    M2 = conv_matrix(second, first.output_shape(shape), "K2")
    assert Context().check(T.mul(M1, M2), composed).verdict == "proved"
    # one slip: the composed kernel flipped (K1 and K2 exchanged where the channels allow)
    wrong = conv_matrix(Conv1d(k=k1 + k2 - 1, out_channels=c_out), shape, "K9")
    assert Context().check(T.mul(M1, M2), wrong).verdict == "refuted"


def test_a_wrong_batchnorm_fold_is_refuted():
    ctx = Context()
    chain = batchnorm_fold_chain(ctx, "n", "m", 1)
    assert all(s.verdict == "proved" for s in chain.steps)
    x, W, b = T.matrix("x", 1, "n"), T.matrix("W1", "n", "m"), T.matrix("b1", 1, "m")
    mu, beta, s = (T.matrix(f"{v}2", 1, "m") for v in ("mu", "beta", "s"))
    bn = T.add(T.hadamard(T.sub(T.add(T.mul(x, W), b), mu), s), beta)
    slip = T.add(T.mul(x, W, T.diag(s)), T.hadamard(b, s), T.neg(mu), beta)  # mu not scaled
    assert Context().check(bn, slip).verdict == "refuted"


def test_the_grammar_reads_layers_and_names_the_column_of_a_slip():
    layers = parse_layers("conv1d(k=3, out=2, stride=1) > batchnorm > relu > residual(linear(4) > tanh) > linear(2)")
    assert [type(x).__name__ for x in layers] == ["Conv1d", "BatchNorm", "Activation", "Residual", "Linear"]
    assert layers[0].out_channels == 2
    for text, col in [("conv1d(k=3) > > relu", 15), ("conv1d(kk=3)", 8), ("linear(2", 9), ("frob", 1)]:
        with pytest.raises(symnet.SpecError, match=f"column {col}"):
            parse_layers(text)


def test_collapse_from_the_command_line(capsys):
    assert main(["collapse", "--net", "conv1d(k=3) > conv1d(k=3) > flatten > linear(2)", "--input-shape", "1x8"]) == 0
    out = capsys.readouterr().out
    assert "two convolutions are one convolution" in out and "size 5" in out
    assert main(["collapse", "--net", "conv1d(k=3) > relu", "--input-shape", "1x8"]) == 0
    assert "not affine" in capsys.readouterr().out
    assert main(["collapse", "--net", "conv1d(k=3) >> relu", "--input-shape", "1x8"]) == 2
    assert "column" in capsys.readouterr().err
    assert main(["collapse", "--net", "conv1d(k=9)", "--input-shape", "1x8"]) == 2
    assert main(["collapse", "--net", "linear(2)"]) == 2


def test_collapse_of_an_imported_torch_model_agrees_with_the_model():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.BatchNorm1d(2), torch.nn.Conv1d(2, 1, 2),
                            torch.nn.Flatten(), torch.nn.Linear(5, 3)).double().eval()
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
    x = torch.randn(4, 1, 8, dtype=torch.float64)
    result = symnet.collapse(symnet.from_torch(m, x))
    assert result.collapsible and result.ok
    with torch.no_grad():
        assert np.allclose(result.function()(x.numpy()), m(x).numpy(), rtol=1e-10, atol=1e-12)
    nonlinear = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)).double()
    r = symnet.collapse(symnet.from_torch(nonlinear, torch.randn(2, 3, dtype=torch.float64)))
    assert not r.collapsible and r.witness is not None
    w = r.witness
    with torch.no_grad():
        f = lambda a: nonlinear(torch.tensor(a)).numpy()  # noqa: E731
        gap = np.max(np.abs(f(w.t * w.input_a + (1 - w.t) * w.input_b) - (w.t * f(w.input_a) + (1 - w.t) * f(w.input_b))))
    assert gap > 1e-6


SPECS = [Linear(3, bias=False), Conv1d(k=3, bias=False, out_channels=2, stride=2, padding=1, dilation=2),
         Conv2d(k=(2, 3), out_channels=2, stride=2, padding=1, dilation=(1, 2)),
         __import__("symnet.networks.layers", fromlist=["ConvTranspose1d"]).ConvTranspose1d(k=3, out_channels=2, stride=2),
         AvgPool1d(k=2, stride=1), MaxPool1d(k=3), BatchNorm(training=True), BatchNorm(eps=0.001), LayerNorm(),
         Dropout(), Flatten(), Residual([Linear(3), Activation("tanh")])]


@pytest.mark.parametrize("layer", SPECS, ids=lambda l: l.spec())
def test_a_layer_s_spec_reads_back_as_the_same_layer(layer):
    assert parse_layers(layer.spec()) == [layer]


def test_the_picture_shows_every_layer_shape_and_skip():
    import xml.etree.ElementTree as ET

    net = Sequential([Conv1d(k=3, out_channels=2), Activation("relu"),
                      Residual([Conv1d(k=3, out_channels=2, padding=1)]), Flatten(), Linear(2)], (1, 8))
    svg = net.to_svg()
    root = ET.fromstring(svg)  # well-formed XML
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for label in ["input 1 x 8", "conv1d(k=3, out=2)", "relu", "conv1d(k=3, out=2, padding=1)", "flatten",
                  "linear(2)", "2 x 6", "12", "skip", "+"]:
        assert label in texts, label


FOLDS = [
    [Conv1d(k=3, out_channels=2), BatchNorm()],
    [Conv1d(k=2, out_channels=3, stride=2, padding=1), BatchNorm()],
    [Conv2d(k=2, out_channels=2), BatchNorm()],
    [Conv1d(k=3), AvgPool1d(k=2)],
    [Conv1d(k=2, out_channels=2), AvgPool1d(k=3)],
]


@pytest.mark.parametrize("pair", FOLDS, ids=lambda p: " > ".join(x.spec() for x in p))
def test_batchnorm_folds_into_a_convolution_and_pooling_merges_with_it(pair):
    shape = (2, 4, 4) if isinstance(pair[0], Conv2d) else (1, 7)
    result = collapse_layers(Sequential(pair, shape))
    titles = [c.title for c in result.derivation.chains]
    assert any("folds into the convolution" in t or "average pooling after" in t for t in titles), titles
    assert result.derivation.ok and result.ok, result.to_text()


def test_a_fold_with_the_wrong_channel_s_scale_is_refuted():
    from symnet.networks.layer_algebra import _tap, entry_name

    conv, shape = Conv1d(k=2, out_channels=2), (1, 5)
    out = conv.output_shape(shape)
    s = [T.scalar(entry_name("s2", o)) for o in range(2)]
    n1 = int(np.prod(out))
    S = T.explicit([[s[i // out[1]] if i == j else T.num(0) for j in range(n1)] for i in range(n1)])
    right = conv_matrix(conv, shape, "K1", taps=lambda o, c, j: T.mul(s[o], _tap(conv, shape, "K1", o, c, j)))
    wrong = conv_matrix(conv, shape, "K1", taps=lambda o, c, j: T.mul(s[1 - o], _tap(conv, shape, "K1", o, c, j)))
    M = T.mul(conv_matrix(conv, shape, "K1"), S)
    assert Context().check(M, right).verdict == "proved"
    assert Context().check(M, wrong).verdict == "refuted"


def test_attention_is_not_affine_but_its_value_path_is_linear():
    from symnet.networks.layers import Attention

    result = collapse_layers(Sequential([Attention(), Linear(2)], (3, 4)))
    assert not result.collapsible and result.witness is not None
    assert [c.title for c in result.derivation.chains] == [
        "Layer 1 (attention): for fixed scores S1, the value path is linear"]
    assert result.derivation.ok


def test_a_huge_input_is_refused_before_any_work(capsys):
    assert main(["collapse", "--net", "conv1d(k=3)", "--input-shape", "1x100000"]) == 2
    err = capsys.readouterr().err
    assert "give a smaller --input-shape" in err and len(err.strip().splitlines()) == 1


def test_a_picture_into_a_missing_directory_is_one_line_naming_the_option(capsys, tmp_path):
    assert main(["collapse", "--net", "linear(2)", "--input-shape", "3", "--picture",
                 str(tmp_path / "no" / "net.svg")]) == 2
    err = capsys.readouterr().err
    assert "(--picture does not create directories)" in err and len(err.strip().splitlines()) == 1
