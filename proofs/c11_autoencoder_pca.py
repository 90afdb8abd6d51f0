"""C11: a linear 3-2-3 autoencoder has rank <= 2 and, trained, does exactly what PCA does."""

import itertools

import numpy as np
import sympy as sp
import sympy.combinatorics

from symnet.kernel import Context
from symnet.networks.backprop import gradients
from symnet.networks.collapse import collapse
from symnet.networks.composer import Network
from symnet.notes.proofs import NUMERIC, Section, sci

CLAIM = "C11"
TITLE = "A linear bottleneck network does what PCA does"
STATEMENT = (
    "A purely linear (3, 2, 3) network with a 2-unit bottleneck fits the best plane through "
    "3-D data, the job PCA does directly (Baldi and Hornik 1989): the rank of "
    "$\\mathbf{W}_1\\mathbf{W}_2$ is at most 2, and the optimal linear autoencoder's "
    "reconstruction error equals PCA's, the sum of the discarded eigenvalues."
)

SEED = 11
N = 200


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)

    # rank: the collapsed map is x W1 W2 + b'; W1 W2 (3x3) has a vanishing determinant
    net = Network.dense([3, 2, 3], "identity")
    result = collapse(net)
    s.derivation(result.derivation, "The (3, 2, 3) linear network collapses")
    W1 = sp.Matrix(3, 2, lambda i, j: sp.Symbol(f"u{i + 1}{j + 1}", real=True))
    W2 = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"v{i + 1}{j + 1}", real=True))
    M = W1 * W2  # entries are unexpanded sums of two products
    det = sp.Add(*[sp.combinatorics.Permutation(list(perm)).signature()
                   * sp.Mul(*[M[i, perm[i]] for i in range(3)])
                   for perm in itertools.permutations(range(3))])  # Leibniz, unexpanded
    check = Context().check(det, sp.S.Zero)
    s.check(
        "$\\det(\\mathbf{W}_1\\mathbf{W}_2) = 0$ for a $3\\times 2$ $\\mathbf{W}_1$ and a "
        "$2\\times 3$ $\\mathbf{W}_2$ with all 12 entries symbolic: the Leibniz sum of the "
        f"determinant, {len(sp.Add.make_args(sp.expand(det, deep=False)))} signed products of "
        "entries of $\\mathbf{W}_1\\mathbf{W}_2$, is decided to be 0 by the kernel, so "
        "$\\operatorname{rank}(\\mathbf{W}_1\\mathbf{W}_2) \\le 2$",
        check,
    )
    s.fact(f"collapse's rank bound for the (3, 2, 3) network: $\\min(3, 2, 3) = {result.rank_bound}$",
           result.rank_bound == 2)

    # numeric evidence on seeded data near a plane
    rng = np.random.default_rng(SEED)
    basis = rng.standard_normal((2, 3))
    X = (rng.standard_normal((N, 2)) * np.array([2.0, 1.5])) @ basis + 0.3 * rng.standard_normal((N, 3))
    X = X - X.mean(axis=0)
    lam, U = np.linalg.eigh(X.T @ X / N)
    lam, U = lam[::-1], U[:, ::-1]
    pca_error = N * float(lam[2])  # sum over points of the squared distance to the plane
    U2 = U[:, :2]
    optimal_error = float(np.sum((X - X @ U2 @ U2.T) ** 2))

    fn = gradients(net, "sse").function()
    p = {"W1": 0.3 * rng.standard_normal((3, 2)), "b1": np.zeros((1, 2)),
         "W2": 0.3 * rng.standard_normal((2, 3)), "b2": np.zeros((1, 3))}
    velocity = {k: np.zeros_like(v) for k, v in p.items()}
    steps = 0
    while steps < 5000:
        out = fn(x=X, t=X, **p)
        if max(float(np.max(np.abs(out[k]))) for k in p) < 1e-9:
            break
        for k in p:
            velocity[k] = 0.9 * velocity[k] - 0.04 / N * out[k]
            p[k] = p[k] + velocity[k]
        steps += 1
    trained_error = 2 * float(fn(x=X, t=X, **p)["loss"])  # sse is half the sum of squares
    M = p["W1"] @ p["W2"]
    singular = np.linalg.svd(M, compute_uv=False)
    # the trained map projects onto the PCA plane: compare the projectors
    Q, _ = np.linalg.qr(p["W2"].T)
    angle_gap = float(np.linalg.norm(Q @ Q.T - U2 @ U2.T, 2))

    rows = [
        ["eigenvalues of the covariance", f"${lam[0]:.4f},\\ {lam[1]:.4f},\\ {lam[2]:.4f}$", ""],
        ["PCA: $N\\lambda_3$ (the discarded eigenvalue)", f"${pca_error:.10f}$", ""],
        ["optimal linear autoencoder $\\mathbf{W}_1 = \\mathbf{U}_2$, $\\mathbf{W}_2 = \\mathbf{U}_2^\\top$",
         f"${optimal_error:.10f}$", sci(abs(optimal_error - pca_error))],
        [f"trained 3-2-3 network ({steps} steps)", f"${trained_error:.10f}$",
         sci(abs(trained_error - pca_error))],
        ["singular values of trained $\\mathbf{W}_1\\mathbf{W}_2$",
         f"${singular[0]:.6f},\\ {singular[1]:.6f}$, {sci(singular[2])}", ""],
        ["distance between its plane and PCA's", sci(angle_gap), ""],
    ]
    rel = abs(trained_error - pca_error) / pca_error
    s.table(
        ["", "value", "difference from PCA"],
        rows,
        f"Seeded data (seed {SEED}): $N = {N}$ centred points near a plane in $\\mathbb{{R}}^3$. "
        "The reconstruction error is the sum over points of $\\|\\mathbf{x} - F(\\mathbf{x})\\|^2$. "
        "The network was trained from a seeded random start by gradient descent with momentum, "
        "using the gradients of symnet.networks.backprop (target = input); it reaches PCA's error, its "
        "product $\\mathbf{W}_1\\mathbf{W}_2$ has rank 2 (third singular value at round-off), and "
        "it projects onto PCA's plane (spectral norm of the difference of the projectors).",
        kind=NUMERIC,
        ok=rel < 1e-9 and abs(optimal_error - pca_error) < 1e-9 * pca_error and singular[2] < 1e-9
        and angle_gap < 1e-6,
        align="lll",
    )
    return s
