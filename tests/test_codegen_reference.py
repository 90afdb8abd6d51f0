"""Compiled gradients against independent references: PyTorch autograd (when installed) and
central finite differences, in float64 and float32, through the in-place workspace path."""

import numpy as np
import pytest

from symnet import Network
from symnet.networks.backprop import gradients

SPECS = ["tanh", "sigmoid", "relu", ["tanh", "identity"], ["sigmoid", "tanh"]]


def _point(g, dtype, batch=5, seed=3):
    return {k: np.asarray(v, dtype=dtype) for k, v in g.random_point(seed, batch=batch).items()}


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-4)])
def test_compiled_gradients_match_pytorch_autograd(spec, dtype, rtol):
    torch = pytest.importorskip("torch")
    widths = [3, 4, 4, 2] if isinstance(spec, str) else [3, 4, 2]
    g = gradients(Network.dense(widths, spec), "sse")
    point = _point(g, dtype)
    f = g.function()
    for _ in range(2):  # a second call reuses the workspace: same numbers
        ours = f(**point)
    specs = [spec] * (len(widths) - 1) if isinstance(spec, str) else spec
    acts = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "identity": lambda z: z}
    params = {k: torch.tensor(v, requires_grad=k not in ("x", "t")) for k, v in point.items()}
    h = params["x"]
    for l, name in enumerate(specs, start=1):
        h = acts[name](h @ params[f"W{l}"] + params[f"b{l}"])
    loss = 0.5 * ((h - params["t"]) ** 2).sum()
    names = [k for k in params if k not in ("x", "t")]
    grads = torch.autograd.grad(loss, [params[k] for k in names])
    assert ours["loss"] == pytest.approx(float(loss.detach()), rel=rtol)
    for k, ref in zip(names, grads):
        assert ours[k].dtype == dtype, k
        scale = max(1.0, float(np.max(np.abs(ref.numpy()))))
        assert np.allclose(ours[k], ref.numpy(), rtol=rtol, atol=rtol * scale), k


@pytest.mark.parametrize("spec", ["tanh", "sigmoid", ["tanh", "sigmoid"]], ids=str)
def test_compiled_gradients_match_finite_differences(spec):
    g = gradients(Network.dense([2, 3, 2], spec), "sse")
    point = _point(g, np.float64, batch=4)
    ours = g.function()(**point)
    step = 1e-6
    for k in g.parameters:
        fd = np.zeros_like(point[k])
        for idx in np.ndindex(fd.shape):
            up, down = dict(point), dict(point)
            up[k], down[k] = point[k].copy(), point[k].copy()
            up[k][idx] += step
            down[k][idx] -= step
            fd[idx] = (g.loss_value(**up) - g.loss_value(**down)) / (2 * step)
        assert np.allclose(ours[k], fd, rtol=1e-6, atol=1e-8), k


def test_saturated_tanh_and_sigmoid_derivatives_stay_exact_in_the_fused_form():
    """g (.) f'(z) at |z| = 30: 1/cosh(z)^2 and e/(1+e)^2, not the cancelled 1 - h^2 = 0."""
    for spec, exact in [("tanh", lambda z: 4 * np.exp(-2 * abs(z)) / (1 + np.exp(-2 * abs(z))) ** 2),
                        ("sigmoid", lambda z: np.exp(-abs(z)) / (1 + np.exp(-abs(z))) ** 2)]:
        g = gradients(Network.dense([1, 1], spec), "sse")
        assert "_times_d_" in g.function().source
        for z in (-30.0, 30.0):
            point = {"x": np.array([[1.0], [1.0]]), "t": np.zeros((2, 1)), "W1": np.array([[z]]),
                     "b1": np.zeros((1, 1))}
            out = g.function()(**point)
            y = np.tanh(z) if spec == "tanh" else 1 / (1 + np.exp(-z))
            assert out["b1"][0, 0] == pytest.approx(2 * y * exact(z), rel=1e-13)


def test_a_new_batch_size_or_dtype_gets_fresh_buffers_and_threads_do_not_share():
    import threading

    g = gradients(Network.dense([3, 4, 2], "tanh"), "sse")
    f = g.function()
    small, large = _point(g, np.float64, batch=2), _point(g, np.float64, batch=7, seed=4)
    ref_small, ref_large = f(**small), f(**large)
    again = f(**small)
    for k in g.parameters:
        assert np.array_equal(again[k], ref_small[k])
    results = {}

    def work(name, point):
        for _ in range(50):
            results[name] = f(**point)

    threads = [threading.Thread(target=work, args=("s", small)), threading.Thread(target=work, args=("l", large))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in g.parameters:
        assert np.array_equal(results["s"][k], ref_small[k]) and np.array_equal(results["l"][k], ref_large[k])
    f.workspace.release()
    assert np.array_equal(f(**small)["W1"], ref_small["W1"])
