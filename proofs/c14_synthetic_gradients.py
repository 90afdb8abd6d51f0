"""C14 (optional): a linear model can predict a layer's error signal well enough to train it."""

import numpy as np

from symnet.networks.backprop import gradients
from symnet.networks.composer import Network
from symnet.notes.proofs import NUMERIC, Section, sci

CLAIM = "C14"
TITLE = "Synthetic gradients from a linear predictor"
STATEMENT = (
    "An aside in the source: synthetic gradients (a small model predicting a layer's gradient) "
    "can work even when that model is linear."
)

SEED = 14
N, HIDDEN = 128, 16
REFIT = 25  # steps between refits of the linear predictor (it is stale in between)


def features(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """What the synthetic-gradient model sees: the layer's output, the target and a constant."""
    return np.hstack([h, t, np.ones((h.shape[0], 1))])


def r_squared(pred: np.ndarray, true: np.ndarray) -> float:
    return 1.0 - float(np.sum((pred - true) ** 2) / np.sum((true - true.mean(axis=0)) ** 2))


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    rng = np.random.default_rng(SEED)
    net = Network.dense([1, HIDDEN, 1], ["tanh", "identity"])
    fn = gradients(net, "sse").function()

    def data(n):
        x = rng.uniform(-2, 2, (n, 1))
        return x, np.sin(2 * x)

    def forward(p, x):
        h = np.tanh(x @ p["W1"] + p["b1"])
        return h, h @ p["W2"] + p["b2"]

    def deltas(p, x, t):
        h, y = forward(p, x)
        d2 = y - t
        return h, d2, (d2 @ p["W2"].T) * (1 - h**2)

    start = {"W1": rng.standard_normal((1, HIDDEN)), "b1": rng.standard_normal((1, HIDDEN)),
             "W2": rng.standard_normal((HIDDEN, 1)) / 4, "b2": np.zeros((1, 1))}
    x, t = data(N)
    xv, tv = data(N)

    # 1. how well a linear model of (h1, t) predicts each layer's delta, on held-out points
    h, d2, d1 = deltas(start, x, t)
    hv, d2v, d1v = deltas(start, xv, tv)
    M2 = np.linalg.lstsq(features(h, t), d2, rcond=None)[0]
    M1 = np.linalg.lstsq(features(h, t), d1, rcond=None)[0]
    r2_out = r_squared(features(hv, tv) @ M2, d2v)
    r2_hid = r_squared(features(hv, tv) @ M1, d1v)
    g_true = xv.T @ d1v
    g_syn = xv.T @ (features(hv, tv) @ M1)
    cosine = float(np.sum(g_true * g_syn) / (np.linalg.norm(g_true) * np.linalg.norm(g_syn)))
    s.table(
        ["predicted error signal", "held-out $R^2$"],
        [["output layer $\\boldsymbol{\\delta}_2 = \\mathbf{y} - \\mathbf{t}$", f"${r2_out:.6f}$"],
         ["hidden layer $\\boldsymbol{\\delta}_1 = (\\boldsymbol{\\delta}_2\\mathbf{W}_2^\\top)\\odot\\tanh'(\\mathbf{z}_1)$",
          f"${r2_hid:.6f}$"],
         ["cosine of synthetic and true $\\partial L/\\partial\\mathbf{W}_1$", f"${cosine:.6f}$"]],
        f"A 1-{HIDDEN}-1 tanh network at a seeded start (seed {SEED}), fitting "
        "$\\sin 2x$ on $[-2, 2]$. A linear model of $[\\mathbf{h}_1, \\mathbf{t}, 1]$ is fitted by "
        "least squares to the true deltas of one batch and judged on another. The output delta "
        "is exactly linear in $(\\mathbf{h}_1, \\mathbf{t})$, so $R^2 = 1$; the hidden delta is "
        "not, yet the synthetic gradient points the same way as the true one.",
        kind=NUMERIC, ok=r2_out > 1 - 1e-9 and cosine > 0.5, align="lr",
    )

    # 2. train the first layer with synthetic gradients only (the model refitted now and then)
    def train(synthetic: bool, steps: int = 400, lr: float = 0.05) -> float:
        p = {k: v.copy() for k, v in start.items()}
        M = None
        for step in range(steps):
            h, d2, d1 = deltas(p, x, t)
            if synthetic:
                if step % REFIT == 0:  # the predictor learns from the true deltas occasionally
                    M = np.linalg.lstsq(features(h, t), d1, rcond=None)[0]
                d1 = features(h, t) @ M
            p["W1"] -= lr / N * (x.T @ d1)
            p["b1"] -= lr / N * d1.sum(axis=0, keepdims=True)
            p["W2"] -= lr / N * (h.T @ d2)
            p["b2"] -= lr / N * d2.sum(axis=0, keepdims=True)
        return float(fn(x=xv, t=tv, **p)["loss"]) / N

    initial = float(fn(x=xv, t=tv, **start)["loss"]) / N
    with_bp, with_sg = train(False), train(True)
    s.table(
        ["first layer trained with", "held-out loss per point"],
        [["(untrained start)", sci(initial)], ["true backprop gradients", sci(with_bp)],
         [f"linear synthetic gradients (refitted every {REFIT} steps)", sci(with_sg)]],
        "400 steps of gradient descent; the output layer always uses its true gradient, the first "
        "layer only the linear predictor's output, which is refitted to the true deltas every "
        f"{REFIT} steps and stale in between. It trains the layer: the loss falls to "
        f"{with_sg / initial:.0%} of its start (backprop: {with_bp / initial:.0%}).",
        kind=NUMERIC, ok=with_sg < 0.25 * initial,
        align="lr",
    )
    return s
