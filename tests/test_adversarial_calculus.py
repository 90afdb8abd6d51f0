"""Red-team tests for the kernel's new calculus: grad/jacobian/hessian, 1x1 matrices as
scalars, sums of entrywise products, inv/det of declared-invertible matrices, and
entrywise function identities decided by cases on the kinks.

The one rule: a false step is never ``proved``; a true step is never ``refuted``
(``unproved`` is always acceptable).  Most assertions are therefore one-sided.  The
Matrix Cookbook identities the kernel claims to decide must come out ``proved``, so a
checker that answers ``unproved`` to everything fails this file.

Truth is decided here independently of symnet: every matrix identity is evaluated by a
small NumPy/mpmath reference in this file (40 digits, gradients by central differences
in mpmath, inverses and determinants by mpmath), at a fixed random instance; identities
whose falsity lives on a kink (a set of measure zero that no random instance hits) are
evaluated exactly at the kink, with the catalogue's conventions (``step(0) = 1``,
``relu'(0) = 0``) and, for derivatives of functions that are identically constant, with
the plain fact that such a derivative is 0 everywhere.

Nothing is marked xfail: a failing test is a finding for the kernel.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from symnet.notes.checkfile import check_text

mpmath.mp.dps = 40
MP = mpmath.mpf

# ---------------------------------------------------------------------------
# the symnet side


def verdicts(text: str) -> list[tuple[int, str, str]]:
    """(line, verdict, shown) for every step of a .deriv text (raises if malformed)."""
    r = check_text(text, "adv.deriv")
    assert not r.malformed, r.to_dict() if hasattr(r, "to_dict") else r
    return [(s.line, s.verdict, s.shown) for c in r.chains for s in c.steps]


def verdict_of(header: str, step: str) -> tuple[str, str]:
    """The verdict of the single step ``step`` after the declarations ``header``."""
    vs = verdicts(header.strip() + "\n" + step + "\n")
    assert len(vs) == 1, vs
    return vs[0][1], vs[0][2]


# ---------------------------------------------------------------------------
# the independent reference (NumPy object arrays of mpmath numbers)

N, M_, K_ = 3, 2, 4  # concrete sizes for the dims n, m, k


def rnd(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    return np.array([[MP(float(rng.normal())) for _ in range(cols)] for _ in range(rows)], dtype=object)


def inv(a: np.ndarray) -> np.ndarray:
    return np.array((mpmath.matrix(a.tolist()) ** -1).tolist(), dtype=object)


def det(a: np.ndarray):
    return mpmath.det(mpmath.matrix(a.tolist()))


def ew(f, a: np.ndarray) -> np.ndarray:
    return np.vectorize(f, otypes=[object])(a)


def eye(n: int) -> np.ndarray:
    return np.array([[MP(int(i == j)) for j in range(n)] for i in range(n)], dtype=object)


def ones(r: int, c: int) -> np.ndarray:
    return np.array([[MP(1)] * c for _ in range(r)], dtype=object)


def diag(v: np.ndarray) -> np.ndarray:
    flat = list(v.ravel())
    out = eye(len(flat)) * MP(0)
    for i, x in enumerate(flat):
        out[i, i] = x
    return out


def sc(a) -> object:
    """A 1x1 array as its scalar."""
    return a[0, 0] if isinstance(a, np.ndarray) else a


def fd_grad(loss, X: np.ndarray) -> np.ndarray:
    """dL/dX by central differences at 40 digits."""
    h = MP(10) ** -15
    G = np.empty(X.shape, dtype=object)
    for idx in np.ndindex(X.shape):
        E = X * MP(0)
        E[idx] = h
        G[idx] = (sc(loss(X + E)) - sc(loss(X - E))) / (2 * h)
    return G


def fd_jac(fun, x: np.ndarray) -> np.ndarray:
    """J_ij = dy_i/dx_j for vectors (row or column) by central differences."""
    h = MP(10) ** -15
    y0 = fun(x).ravel()
    J = np.empty((len(y0), x.size), dtype=object)
    for j, idx in enumerate(np.ndindex(x.shape)):
        E = x * MP(0)
        E[idx] = h
        J[:, j] = (fun(x + E).ravel() - fun(x - E).ravel()) / (2 * h)
    return J


def maxdiff(p, q) -> float:
    p = np.asarray(p, dtype=object) if isinstance(p, np.ndarray) else np.array([[p]], dtype=object)
    q = np.asarray(q, dtype=object) if isinstance(q, np.ndarray) else np.array([[q]], dtype=object)
    assert p.shape == q.shape, (p.shape, q.shape)
    return float(max(abs(a - b) for a, b in zip(p.ravel(), q.ravel())))


def instance(seed: int = 7) -> dict:
    """One random instance of every name used below (n = 3, m = 2, k = 4)."""
    rng = np.random.default_rng(seed)
    v = {name: rnd(N, N, rng) for name in ("A", "B", "C", "X", "M", "Nm")}
    v.update({name: rnd(N, 1, rng) for name in ("x", "y", "z", "a", "b")})
    v["r"] = rnd(1, N, rng)
    v["W"] = rnd(N, M_, rng)   # n x m
    v["V"] = rnd(N, M_, rng)   # n x m
    v["U"] = rnd(M_, N, rng)   # m x n
    v["Zk"] = rnd(K_, N, rng)  # k x n
    v["Wl"] = rnd(N, M_, rng)  # n x m
    v["Yk"] = rnd(K_, M_, rng)  # k x m
    v["P"] = rnd(1, N, rng)
    v["Q"] = rnd(N, 1, rng)
    v["c"] = MP(float(rng.normal()))
    v["al"] = MP(float(rng.normal()))
    return v


def sigmoid(t):
    return 1 / (1 + mpmath.exp(-t))


def relu(t):
    return t if t > 0 else MP(0)


def step(t):  # the catalogue: 0 for z < 0, 1 otherwise
    return MP(0) if t < 0 else MP(1)


def leaky(t, al):
    return al * t if t < 0 else t


HEADER = """
dim n, m, k
matrix A: n x n, B: n x n, C: n x n, X: n x n
matrix x: n x 1, y: n x 1, z: n x 1, a: n x 1, b: n x 1, r: 1 x n
matrix W: n x m, V: n x m, U: m x n, P: 1 x n, Q: n x 1
matrix Zk: k x n, Wl: n x m, Yk: k x m
matrix M: n x n invertible, Nm: n x n invertible
scalar c, al
"""

# ---------------------------------------------------------------------------
# 1. True identities from the Matrix Cookbook (and the capabilities' own examples):
#    each must be proved (a side condition may be stated), and is checked true here.

T = lambda X: X.T  # noqa: E731

COOKBOOK = [
    # derivatives of linear, bilinear and quadratic forms
    ("grad(x.T*a, x) = a",
     lambda v: (fd_grad(lambda x: x.T @ v["a"], v["x"]), v["a"])),
    ("grad(a.T*x, x) = a",
     lambda v: (fd_grad(lambda x: v["a"].T @ x, v["x"]), v["a"])),
    ("grad(a.T*X*b, X) = a*b.T",
     lambda v: (fd_grad(lambda X: v["a"].T @ X @ v["b"], v["X"]), v["a"] @ v["b"].T)),
    ("grad(x.T*A*x, x) = (A + A.T)*x",
     lambda v: (fd_grad(lambda x: x.T @ v["A"] @ x, v["x"]), (v["A"] + v["A"].T) @ v["x"])),
    ("grad(a.T*X.T*X*b, X) = X*(a*b.T + b*a.T)",
     lambda v: (fd_grad(lambda X: v["a"].T @ X.T @ X @ v["b"], v["X"]),
                v["X"] @ (v["a"] @ v["b"].T + v["b"] @ v["a"].T))),
    ("grad((a.T*x)*(b.T*x), x) = a*b.T*x + b*a.T*x",
     lambda v: (fd_grad(lambda x: (v["a"].T @ x) @ (v["b"].T @ x), v["x"]),
                v["a"] @ v["b"].T @ v["x"] + v["b"] @ v["a"].T @ v["x"])),
    ("grad(c*x.T*x, x) = 2*c*x",
     lambda v: (fd_grad(lambda x: v["c"] * (x.T @ x), v["x"]), 2 * v["c"] * v["x"])),
    # traces
    ("grad(trace(A*X), X) = A.T",
     lambda v: (fd_grad(lambda X: np.trace(v["A"] @ X), v["X"]), v["A"].T)),
    ("grad(trace(A*X*B), X) = A.T*B.T",
     lambda v: (fd_grad(lambda X: np.trace(v["A"] @ X @ v["B"]), v["X"]), v["A"].T @ v["B"].T)),
    ("grad(trace(X.T*A*X), X) = A*X + A.T*X",
     lambda v: (fd_grad(lambda X: np.trace(X.T @ v["A"] @ X), v["X"]),
                v["A"] @ v["X"] + v["A"].T @ v["X"])),
    ("grad(trace(X*X), X) = 2*X.T",
     lambda v: (fd_grad(lambda X: np.trace(X @ X), v["X"]), 2 * v["X"].T)),
    ("grad(trace(X**3), X) = 3*(X**2).T",
     lambda v: (fd_grad(lambda X: np.trace(X @ X @ X), v["X"]), 3 * (v["X"] @ v["X"]).T)),
    ("grad(trace(B*X.T*A*X), X) = A*X*B + A.T*X*B.T",
     lambda v: (fd_grad(lambda X: np.trace(v["B"] @ X.T @ v["A"] @ X), v["X"]),
                v["A"] @ v["X"] @ v["B"] + v["A"].T @ v["X"] @ v["B"].T)),
    # Frobenius norms and least squares
    ("grad(norm(X)**2, X) = 2*X",
     lambda v: (fd_grad(lambda X: sum(t * t for t in X.ravel()), v["X"]), 2 * v["X"])),
    ("grad(norm(x), x) = x/norm(x)",
     lambda v: (fd_grad(lambda x: mpmath.sqrt(sum(t * t for t in x.ravel())), v["x"]),
                v["x"] / mpmath.sqrt(sum(t * t for t in v["x"].ravel())))),
    ("grad(norm(Zk*Wl - Yk)**2, Wl) = 2*Zk.T*(Zk*Wl - Yk)",
     lambda v: (fd_grad(lambda W: sum(t * t for t in (v["Zk"] @ W - v["Yk"]).ravel()), v["Wl"]),
                2 * v["Zk"].T @ (v["Zk"] @ v["Wl"] - v["Yk"]))),
    ("grad(trace((Zk*Wl - Yk).T*(Zk*Wl - Yk)), Wl) = 2*Zk.T*(Zk*Wl - Yk)",
     lambda v: (fd_grad(lambda W: np.trace((v["Zk"] @ W - v["Yk"]).T @ (v["Zk"] @ W - v["Yk"])), v["Wl"]),
                2 * v["Zk"].T @ (v["Zk"] @ v["Wl"] - v["Yk"]))),
    ("grad((x.T*a)/trace(x.T*x), x) = a/trace(x.T*x) - 2*(x.T*a)*x/trace(x.T*x)**2",
     lambda v: (fd_grad(lambda x: sc(x.T @ v["a"]) / sc(x.T @ x), v["x"]),
                v["a"] / sc(v["x"].T @ v["x"]) - 2 * sc(v["x"].T @ v["a"]) * v["x"] / sc(v["x"].T @ v["x"]) ** 2)),
    # losses through tanh / sigmoid
    ("grad(tanh(a.T*x), x) = (1 - tanh(trace(a.T*x))**2)*a",
     lambda v: (fd_grad(lambda x: mpmath.tanh(sc(v["a"].T @ x)), v["x"]),
                (1 - mpmath.tanh(sc(v["a"].T @ v["x"])) ** 2) * v["a"])),
    ("grad(exp(a.T*x), x) = exp(a.T*x)*a",
     lambda v: (fd_grad(lambda x: mpmath.exp(sc(v["a"].T @ x)), v["x"]),
                mpmath.exp(sc(v["a"].T @ v["x"])) * v["a"])),
    ("grad(sum(sigmoid(W.T*x)), x) = W*hadamard(sigmoid(W.T*x), ones(m, 1) - sigmoid(W.T*x))",
     lambda v: (fd_grad(lambda x: sum(ew(sigmoid, v["W"].T @ x).ravel()), v["x"]),
                v["W"] @ (ew(sigmoid, v["W"].T @ v["x"]) * (1 - ew(sigmoid, v["W"].T @ v["x"]))))),
    ("grad(sum(tanh(x)), x) = ones(n, 1) - hadamard(tanh(x), tanh(x))",
     lambda v: (fd_grad(lambda x: sum(ew(mpmath.tanh, x).ravel()), v["x"]),
                1 - ew(mpmath.tanh, v["x"]) ** 2)),
    # inverses and determinants
    ("grad(det(M), M) = det(M)*inv(M).T",
     lambda v: (fd_grad(det, v["M"]), det(v["M"]) * inv(v["M"]).T)),
    ("grad(trace(inv(M)), M) = -inv(M).T*inv(M).T",
     lambda v: (fd_grad(lambda X: np.trace(inv(X)), v["M"]), -inv(v["M"]).T @ inv(v["M"]).T)),
    ("grad(a.T*inv(M)*b, M) = -inv(M).T*a*b.T*inv(M).T",
     lambda v: (fd_grad(lambda X: v["a"].T @ inv(X) @ v["b"], v["M"]),
                -inv(v["M"]).T @ v["a"] @ v["b"].T @ inv(v["M"]).T)),
    ("grad(trace(A*inv(M)*B), M) = -(inv(M)*B*A*inv(M)).T",
     lambda v: (fd_grad(lambda X: np.trace(v["A"] @ inv(X) @ v["B"]), v["M"]),
                -(inv(v["M"]) @ v["B"] @ v["A"] @ inv(v["M"])).T)),
    ("inv(M*Nm) = inv(Nm)*inv(M)",
     lambda v: (inv(v["M"] @ v["Nm"]), inv(v["Nm"]) @ inv(v["M"]))),
    ("inv(M.T) = inv(M).T", lambda v: (inv(v["M"].T), inv(v["M"]).T)),
    ("inv(2*M) = 1/2*inv(M)", lambda v: (inv(2 * v["M"]), inv(v["M"]) / 2)),
    ("M*inv(M) = eye(n)", lambda v: (v["M"] @ inv(v["M"]), eye(N))),
    ("inv(M)*M = eye(n)", lambda v: (inv(v["M"]) @ v["M"], eye(N))),
    ("M.T*inv(M).T = eye(n)", lambda v: (v["M"].T @ inv(v["M"]).T, eye(N))),
    ("inv(inv(M)) = M", lambda v: (inv(inv(v["M"])), v["M"])),
    ("inv(M*Nm)*M = inv(Nm)", lambda v: (inv(v["M"] @ v["Nm"]) @ v["M"], inv(v["Nm"]))),
    ("M**-1 = inv(M)", lambda v: (inv(v["M"]), inv(v["M"]))),
    ("det(M*Nm) = det(M)*det(Nm)", lambda v: (det(v["M"] @ v["Nm"]), det(v["M"]) * det(v["Nm"]))),
    ("det(M.T*Nm) = det(M)*det(Nm)", lambda v: (det(v["M"].T @ v["Nm"]), det(v["M"]) * det(v["Nm"]))),
    ("det(A*B) = det(B*A)", lambda v: (det(v["A"] @ v["B"]), det(v["B"] @ v["A"]))),
    ("det(A.T) = det(A)", lambda v: (det(v["A"].T), det(v["A"]))),
    ("det(2*M) = 2**n*det(M)", lambda v: (det(2 * v["M"]), 2 ** N * det(v["M"]))),
    ("det(inv(M)) = 1/det(M)", lambda v: (det(inv(v["M"])), 1 / det(v["M"]))),
    ("det(M*A*inv(M)) = det(A)", lambda v: (det(v["M"] @ v["A"] @ inv(v["M"])), det(v["A"]))),
    ("grad(log(det(M)), M) = inv(M).T",  # true where it is defined (det(M) > 0)
     lambda v: (fd_grad(lambda X: mpmath.log(abs(det(X))), v["M"]), inv(v["M"]).T)),
    # 1x1 matrices are scalars
    ("x.T*x = trace(x*x.T)", lambda v: (v["x"].T @ v["x"], np.trace(v["x"] @ v["x"].T))),
    ("x*x.T*a = x*(x.T*a)", lambda v: (v["x"] @ v["x"].T @ v["a"], v["x"] @ (v["x"].T @ v["a"]))),
    ("a.T*x*b.T = b.T*(x.T*a)", lambda v: (v["a"].T @ v["x"] @ v["b"].T, sc(v["x"].T @ v["a"]) * v["b"].T)),
    ("x.T*A*x = trace(A.T*x*x.T)", lambda v: (v["x"].T @ v["A"] @ v["x"], np.trace(v["A"].T @ v["x"] @ v["x"].T))),
    ("x*y.T*z = (y.T*z)*x", lambda v: (v["x"] @ v["y"].T @ v["z"], sc(v["y"].T @ v["z"]) * v["x"])),
    ("(x*y.T)**2 = (x.T*y)*x*y.T",
     lambda v: (v["x"] @ v["y"].T @ v["x"] @ v["y"].T, sc(v["x"].T @ v["y"]) * v["x"] @ v["y"].T)),
    ("P*Q = trace(Q*P)", lambda v: (v["P"] @ v["Q"], np.trace(v["Q"] @ v["P"]))),
    ("hadamard(x.T*y, a.T*b) = (b.T*a)*(y.T*x)",
     lambda v: (sc(v["x"].T @ v["y"]) * sc(v["a"].T @ v["b"]), sc(v["b"].T @ v["a"]) * sc(v["y"].T @ v["x"]))),
    # sums of entrywise products
    ("trace(A.T*B) = ones(1, n)*hadamard(A, B)*ones(n, 1)",
     lambda v: (np.trace(v["A"].T @ v["B"]), sum((v["A"] * v["B"]).ravel()))),
    ("trace(A.T*hadamard(B, C)) = trace(hadamard(A, B).T*C)",
     lambda v: (np.trace(v["A"].T @ (v["B"] * v["C"])), np.trace((v["A"] * v["B"]).T @ v["C"]))),
    ("trace(A*hadamard(B, C)) = trace(hadamard(A.T, B).T*C)",
     lambda v: (np.trace(v["A"] @ (v["B"] * v["C"])), np.trace((v["A"].T * v["B"]).T @ v["C"]))),
    ("ones(1, n)*hadamard(W, V)*ones(m, 1) = trace(W.T*V)",
     lambda v: (sum((v["W"] * v["V"]).ravel()), np.trace(v["W"].T @ v["V"]))),
    ("ones(1, n)*hadamard(W, U.T)*ones(m, 1) = trace(W*U)",
     lambda v: (sum((v["W"] * v["U"].T).ravel()), np.trace(v["W"] @ v["U"]))),
    ("hadamard(x, y).T*z = hadamard(y, z).T*x",
     lambda v: ((v["x"] * v["y"]).T @ v["z"], (v["y"] * v["z"]).T @ v["x"])),
    ("ones(1, n)*hadamard(hadamard(A, B), C)*ones(n, 1) = ones(1, n)*hadamard(hadamard(A.T, B.T), C.T)*ones(n, 1)",
     lambda v: (sum((v["A"] * v["B"] * v["C"]).ravel()), sum((v["A"].T * v["B"].T * v["C"].T).ravel()))),
    ("trace(hadamard(A, B)*hadamard(B, C)) = trace(hadamard(B, C)*hadamard(A, B))",
     lambda v: (np.trace((v["A"] * v["B"]) @ (v["B"] * v["C"])), np.trace((v["B"] * v["C"]) @ (v["A"] * v["B"])))),
    # Jacobians and Hessians
    ("jacobian(A*x, x) = A", lambda v: (fd_jac(lambda x: v["A"] @ x, v["x"]), v["A"])),
    ("jacobian(r*W, r) = W.T", lambda v: (fd_jac(lambda r: r @ v["W"], v["r"]), v["W"].T)),
    ("jacobian(x, x) = eye(n)", lambda v: (fd_jac(lambda x: x, v["x"]), eye(N))),
    ("jacobian(c*x, x) = c*eye(n)", lambda v: (fd_jac(lambda x: v["c"] * x, v["x"]), v["c"] * eye(N))),
    ("jacobian(tanh(W.T*x), x) = diag(ones(m, 1) - hadamard(tanh(W.T*x), tanh(W.T*x)))*W.T",
     lambda v: (fd_jac(lambda x: ew(mpmath.tanh, v["W"].T @ x), v["x"]),
                diag(1 - ew(mpmath.tanh, v["W"].T @ v["x"]) ** 2) @ v["W"].T)),
    ("jacobian(hadamard(x, x), x) = 2*diag(x)",
     lambda v: (fd_jac(lambda x: x * x, v["x"]), 2 * diag(v["x"]))),
    ("jacobian(hadamard(x, A*x), x) = diag(A*x) + diag(x)*A",
     lambda v: (fd_jac(lambda x: x * (v["A"] @ x), v["x"]), diag(v["A"] @ v["x"]) + diag(v["x"]) @ v["A"])),
    ("hessian(x.T*A*x, x) = A + A.T",
     lambda v: (fd_jac(lambda x: (v["A"] + v["A"].T) @ x, v["x"]), v["A"] + v["A"].T)),
    ("hessian(r*A*r.T, r) = A + A.T",
     lambda v: (fd_jac(lambda r: r @ (v["A"] + v["A"].T), v["r"]), v["A"] + v["A"].T)),
    ("hessian(c*x.T*A*x, x) = c*(A + A.T)",
     lambda v: (fd_jac(lambda x: v["c"] * (v["A"] + v["A"].T) @ x, v["x"]), v["c"] * (v["A"] + v["A"].T))),
    ("hessian(x.T*x, x) = 2*eye(n)", lambda v: (fd_jac(lambda x: 2 * x, v["x"]), 2 * eye(N))),
    ("hessian(norm(x)**2, x) = 2*eye(n)", lambda v: (fd_jac(lambda x: 2 * x, v["x"]), 2 * eye(N))),
    ("hessian(a.T*x, x) = zeros(n, n)", lambda v: (fd_jac(lambda x: v["a"] * 1, v["x"]), eye(N) * 0)),
    # entrywise functions
    ("sigmoid(-A) = ones(n, n) - sigmoid(A)",
     lambda v: (ew(sigmoid, -v["A"]), 1 - ew(sigmoid, v["A"]))),
    ("tanh(A) = 2*sigmoid(2*A) - ones(n, n)",
     lambda v: (ew(mpmath.tanh, v["A"]), 2 * ew(sigmoid, 2 * v["A"]) - 1)),
    ("abs(A) = relu(A) + relu(-A)", lambda v: (ew(abs, v["A"]), ew(relu, v["A"]) + ew(relu, -v["A"]))),
    ("A = relu(A) - relu(-A)", lambda v: (v["A"], ew(relu, v["A"]) - ew(relu, -v["A"]))),
    ("leaky_relu(A, al) = relu(A) - al*relu(-A)",
     lambda v: (ew(lambda t: leaky(t, v["al"]), v["A"]), ew(relu, v["A"]) - v["al"] * ew(relu, -v["A"]))),
    ("relu(-2*A) = 2*relu(-A)", lambda v: (ew(relu, -2 * v["A"]), 2 * ew(relu, -v["A"]))),
    ("relu(A.T) = relu(A).T", lambda v: (ew(relu, v["A"].T), ew(relu, v["A"]).T)),
    ("relu(A) - leaky_relu(A, 0) = zeros(n, n)",
     lambda v: (ew(relu, v["A"]) - ew(lambda t: leaky(t, 0), v["A"]), v["A"] * 0)),
]


@pytest.mark.parametrize("claim,ref", COOKBOOK, ids=[c for c, _ in COOKBOOK])
def test_cookbook_identity_is_proved(claim, ref):
    lhs, rhs = ref(instance())
    assert maxdiff(lhs, rhs) < 1e-15, "the reference says this identity is false: fix the test"
    verdict, shown = verdict_of(HEADER, claim)
    assert verdict == "proved", (claim, shown)


# ---------------------------------------------------------------------------
# 2. False identities with a counterexample on every random instance: never proved.

FALSE = [
    ("det(2*M) = 2*det(M)", lambda v: (det(2 * v["M"]), 2 * det(v["M"]))),
    ("det(-M) = det(M)", lambda v: (det(-v["M"]), det(v["M"]))),
    ("det(A + B) = det(A) + det(B)", lambda v: (det(v["A"] + v["B"]), det(v["A"]) + det(v["B"]))),
    ("det(c*A) = c*det(A)", lambda v: (det(v["c"] * v["A"]), v["c"] * det(v["A"]))),
    ("det(W*U) = det(U*W)", lambda v: (det(v["W"] @ v["U"]), det(v["U"] @ v["W"]))),
    ("inv(2*M) = 2*inv(M)", lambda v: (inv(2 * v["M"]), 2 * inv(v["M"]))),
    ("inv(M.T*Nm) = inv(Nm)*inv(M)", lambda v: (inv(v["M"].T @ v["Nm"]), inv(v["Nm"]) @ inv(v["M"]))),
    ("inv(M*Nm) = inv(M)*inv(Nm)", lambda v: (inv(v["M"] @ v["Nm"]), inv(v["M"]) @ inv(v["Nm"]))),
    ("M*inv(Nm) = eye(n)", lambda v: (v["M"] @ inv(v["Nm"]), eye(N))),
    ("M.T*inv(M) = eye(n)", lambda v: (v["M"].T @ inv(v["M"]), eye(N))),
    ("inv(M**2) = inv(M)*M", lambda v: (inv(v["M"] @ v["M"]), inv(v["M"]) @ v["M"])),
    ("grad(log(det(M)), M) = inv(M)",
     lambda v: (fd_grad(lambda X: mpmath.log(abs(det(X))), v["M"]), inv(v["M"]))),
    ("grad(det(M), M) = det(M)*inv(M)", lambda v: (fd_grad(det, v["M"]), det(v["M"]) * inv(v["M"]))),
    ("grad(trace(inv(M)), M) = -inv(M)*inv(M)",
     lambda v: (fd_grad(lambda X: np.trace(inv(X)), v["M"]), -inv(v["M"]) @ inv(v["M"]))),
    ("grad(a.T*inv(M)*b, M) = -inv(M)*a*b.T*inv(M)",
     lambda v: (fd_grad(lambda X: v["a"].T @ inv(X) @ v["b"], v["M"]),
                -inv(v["M"]) @ v["a"] @ v["b"].T @ inv(v["M"]))),
    ("grad(norm(x), x) = x", lambda v: (fd_grad(lambda x: mpmath.sqrt(sum(t * t for t in x.ravel())), v["x"]), v["x"])),
    ("grad(norm(X), X) = X", lambda v: (fd_grad(lambda X: mpmath.sqrt(sum(t * t for t in X.ravel())), v["X"]), v["X"])),
    ("grad(log(x.T*x), x) = x/trace(x.T*x)",
     lambda v: (fd_grad(lambda x: mpmath.log(sc(x.T @ x)), v["x"]), v["x"] / sc(v["x"].T @ v["x"]))),
    ("grad(x.T*A*x, x) = 2*A*x", lambda v: (fd_grad(lambda x: x.T @ v["A"] @ x, v["x"]), 2 * v["A"] @ v["x"])),
    ("grad(x.T*A*x, x) = (A + A.T)*x.T.T + A*x",
     lambda v: (fd_grad(lambda x: x.T @ v["A"] @ x, v["x"]), (2 * v["A"] + v["A"].T) @ v["x"])),
    ("grad(trace(X*X), X) = 2*X", lambda v: (fd_grad(lambda X: np.trace(X @ X), v["X"]), 2 * v["X"])),
    ("grad(trace(A*X*B), X) = B.T*A.T",
     lambda v: (fd_grad(lambda X: np.trace(v["A"] @ X @ v["B"]), v["X"]), v["B"].T @ v["A"].T)),
    ("grad(a.T*X*b, X) = b*a.T", lambda v: (fd_grad(lambda X: v["a"].T @ X @ v["b"], v["X"]), v["b"] @ v["a"].T)),
    ("grad(norm(Zk*Wl - Yk)**2, Wl) = Zk.T*(Zk*Wl - Yk)",
     lambda v: (fd_grad(lambda W: sum(t * t for t in (v["Zk"] @ W - v["Yk"]).ravel()), v["Wl"]),
                v["Zk"].T @ (v["Zk"] @ v["Wl"] - v["Yk"]))),
    ("grad(norm(Zk*Wl - Yk)**2, Wl) = 2*Zk.T*(Yk - Zk*Wl)",
     lambda v: (fd_grad(lambda W: sum(t * t for t in (v["Zk"] @ W - v["Yk"]).ravel()), v["Wl"]),
                2 * v["Zk"].T @ (v["Yk"] - v["Zk"] @ v["Wl"]))),
    ("grad(sqrt(trace(x.T*x)), x) = x",
     lambda v: (fd_grad(lambda x: mpmath.sqrt(sc(x.T @ x)), v["x"]), v["x"])),
    ("grad(tanh(a.T*x), x) = (1 - tanh(trace(a.T*x)))*a",
     lambda v: (fd_grad(lambda x: mpmath.tanh(sc(v["a"].T @ x)), v["x"]),
                (1 - mpmath.tanh(sc(v["a"].T @ v["x"]))) * v["a"])),
    ("grad(sum(sigmoid(W.T*x)), x) = W*sigmoid(W.T*x)",
     lambda v: (fd_grad(lambda x: sum(ew(sigmoid, v["W"].T @ x).ravel()), v["x"]), v["W"] @ ew(sigmoid, v["W"].T @ v["x"]))),
    ("grad((x.T*a)/trace(x.T*x), x) = a/trace(x.T*x) - (x.T*a)*x/trace(x.T*x)**2",
     lambda v: (fd_grad(lambda x: sc(x.T @ v["a"]) / sc(x.T @ x), v["x"]),
                v["a"] / sc(v["x"].T @ v["x"]) - sc(v["x"].T @ v["a"]) * v["x"] / sc(v["x"].T @ v["x"]) ** 2)),
    ("jacobian(A*x, x) = A.T", lambda v: (fd_jac(lambda x: v["A"] @ x, v["x"]), v["A"].T)),
    ("jacobian(r*A, r) = A", lambda v: (fd_jac(lambda r: r @ v["A"], v["r"]), v["A"])),
    ("jacobian(tanh(A*x), x) = A*diag(ones(n, 1) - hadamard(tanh(A*x), tanh(A*x)))",
     lambda v: (fd_jac(lambda x: ew(mpmath.tanh, v["A"] @ x), v["x"]),
                v["A"] @ diag(1 - ew(mpmath.tanh, v["A"] @ v["x"]) ** 2))),
    ("jacobian(tanh(A*x), x) = diag(ones(n, 1) - hadamard(tanh(x), tanh(x)))*A",
     lambda v: (fd_jac(lambda x: ew(mpmath.tanh, v["A"] @ x), v["x"]),
                diag(1 - ew(mpmath.tanh, v["x"]) ** 2) @ v["A"])),
    ("jacobian(hadamard(x, x), x) = diag(x)", lambda v: (fd_jac(lambda x: x * x, v["x"]), diag(v["x"]))),
    ("jacobian(hadamard(x, A*x), x) = diag(A*x) + A*diag(x)",
     lambda v: (fd_jac(lambda x: x * (v["A"] @ x), v["x"]), diag(v["A"] @ v["x"]) + v["A"] @ diag(v["x"]))),
    ("hessian(x.T*A*x, x) = 2*A", lambda v: (fd_jac(lambda x: (v["A"] + v["A"].T) @ x, v["x"]), 2 * v["A"])),
    ("hessian((a.T*x)**2, x) = a*a.T", lambda v: (2 * v["a"] @ v["a"].T, v["a"] @ v["a"].T)),
    ("hessian(sum(exp(x)), x) = diag(x)", lambda v: (diag(ew(mpmath.exp, v["x"])), diag(v["x"]))),
    ("x*y.T = y*x.T", lambda v: (v["x"] @ v["y"].T, v["y"] @ v["x"].T)),
    ("x*y.T*z = z*(y.T*x)", lambda v: (v["x"] @ v["y"].T @ v["z"], v["z"] * sc(v["y"].T @ v["x"]))),
    ("x.T*A*y = y.T*A*x", lambda v: (v["x"].T @ v["A"] @ v["y"], v["y"].T @ v["A"] @ v["x"])),
    ("Q*P = P.T*Q.T", lambda v: (v["Q"] @ v["P"], v["P"].T @ v["Q"].T)),
    ("(x*y.T)**2 = (x.T*x)*y*y.T",
     lambda v: (v["x"] @ v["y"].T @ v["x"] @ v["y"].T, sc(v["x"].T @ v["x"]) * v["y"] @ v["y"].T)),
    ("hadamard(x.T*y, a.T*b) = (x.T*b)*(a.T*y)",
     lambda v: (sc(v["x"].T @ v["y"]) * sc(v["a"].T @ v["b"]), sc(v["x"].T @ v["b"]) * sc(v["a"].T @ v["y"]))),
    ("hadamard(x.T*y, a.T*b) = (x.T*a)*(y.T*b)",
     lambda v: (sc(v["x"].T @ v["y"]) * sc(v["a"].T @ v["b"]), sc(v["x"].T @ v["a"]) * sc(v["y"].T @ v["b"]))),
    ("trace(A.T*hadamard(B, C)) = trace(hadamard(A, B)*C)",
     lambda v: (np.trace(v["A"].T @ (v["B"] * v["C"])), np.trace((v["A"] * v["B"]) @ v["C"]))),
    ("trace(hadamard(A, B)) = trace(A*B)", lambda v: (np.trace(v["A"] * v["B"]), np.trace(v["A"] @ v["B"]))),
    ("trace(hadamard(A, B)*C) = trace(hadamard(A, C)*B)",
     lambda v: (np.trace((v["A"] * v["B"]) @ v["C"]), np.trace((v["A"] * v["C"]) @ v["B"]))),
    ("trace(hadamard(A, B)*C) = trace(hadamard(A, C.T)*B)",
     lambda v: (np.trace((v["A"] * v["B"]) @ v["C"]), np.trace((v["A"] * v["C"].T) @ v["B"]))),
    ("trace(hadamard(A, B)*hadamard(B, C)) = trace(hadamard(A, B)*hadamard(C, B).T)",
     lambda v: (np.trace((v["A"] * v["B"]) @ (v["B"] * v["C"])), np.trace((v["A"] * v["B"]) @ (v["C"] * v["B"]).T))),
    ("ones(1, n)*hadamard(hadamard(A, B), C)*ones(n, 1) = ones(1, n)*hadamard(hadamard(A.T, B), C)*ones(n, 1)",
     lambda v: (sum((v["A"] * v["B"] * v["C"]).ravel()), sum((v["A"].T * v["B"] * v["C"]).ravel()))),
    ("ones(1, n)*hadamard(W, V)*ones(m, 1) = trace(W*U)",
     lambda v: (sum((v["W"] * v["V"]).ravel()), np.trace(v["W"] @ v["U"]))),
    ("sum(hadamard(x, y)) = sum(x)*sum(y)",
     lambda v: (sum((v["x"] * v["y"]).ravel()), sum(v["x"].ravel()) * sum(v["y"].ravel()))),
    ("sum(x*y.T) = x.T*y", lambda v: (sum((v["x"] @ v["y"].T).ravel()), v["x"].T @ v["y"])),
    ("sum(hadamard(A, eye(n))) = sum(A)", lambda v: (np.trace(v["A"]), sum(v["A"].ravel()))),
    ("relu(A) + relu(-A) = A", lambda v: (ew(relu, v["A"]) + ew(relu, -v["A"]), v["A"])),
    ("relu(A) - relu(-A) = A.T", lambda v: (ew(relu, v["A"]) - ew(relu, -v["A"]), v["A"].T)),
    ("relu(A) + relu(B) = relu(A + B)", lambda v: (ew(relu, v["A"]) + ew(relu, v["B"]), ew(relu, v["A"] + v["B"]))),
    ("hadamard(relu(A), relu(B)) = relu(hadamard(A, B))",
     lambda v: (ew(relu, v["A"]) * ew(relu, v["B"]), ew(relu, v["A"] * v["B"]))),
    ("hadamard(tanh(A), tanh(A.T)) = hadamard(tanh(A), tanh(A))",
     lambda v: (ew(mpmath.tanh, v["A"]) * ew(mpmath.tanh, v["A"].T), ew(mpmath.tanh, v["A"]) ** 2)),
    ("tanh(A) + tanh(B) = tanh(A + B)", lambda v: (ew(mpmath.tanh, v["A"]) + ew(mpmath.tanh, v["B"]), ew(mpmath.tanh, v["A"] + v["B"]))),
    ("tanh(A) + tanh(A.T) = 2*tanh(A)", lambda v: (ew(mpmath.tanh, v["A"]) + ew(mpmath.tanh, v["A"].T), 2 * ew(mpmath.tanh, v["A"]))),
    ("sigmoid(A) + sigmoid(-B) = ones(n, n)", lambda v: (ew(sigmoid, v["A"]) + ew(sigmoid, -v["B"]), ones(N, N))),
    ("sigmoid(-A) = ones(n, n) - sigmoid(A.T)", lambda v: (ew(sigmoid, -v["A"]), 1 - ew(sigmoid, v["A"].T))),
    ("relu(A) + ones(n, n) = relu(A + ones(n, n))",
     lambda v: (ew(relu, v["A"]) + 1, ew(relu, v["A"] + 1))),
    ("relu(A - ones(n, n)) = relu(A) - ones(n, n)", lambda v: (ew(relu, v["A"] - 1), ew(relu, v["A"]) - 1)),
    ("relu(2*A) = relu(A)", lambda v: (ew(relu, 2 * v["A"]), ew(relu, v["A"]))),
    ("relu(-2*A) = 2*relu(A)", lambda v: (ew(relu, -2 * v["A"]), 2 * ew(relu, v["A"]))),
    ("leaky_relu(A, al) = relu(A) + al*relu(-A)",
     lambda v: (ew(lambda t: leaky(t, v["al"]), v["A"]), ew(relu, v["A"]) + v["al"] * ew(relu, -v["A"]))),
    ("hadamard(relu(A), relu(-A)) = hadamard(A, A)",
     lambda v: (ew(relu, v["A"]) * ew(relu, -v["A"]), v["A"] * v["A"])),
]


@pytest.mark.parametrize("claim,ref", FALSE, ids=[c for c, _ in FALSE])
def test_false_identity_is_not_proved(claim, ref):
    lhs, rhs = ref(instance())
    assert maxdiff(lhs, rhs) > 1e-6, "the reference says this identity is true: fix the test"
    verdict, shown = verdict_of(HEADER, claim)
    assert verdict != "proved", (claim, shown)


# ---------------------------------------------------------------------------
# 3. FINDINGS -- false steps the kernel proves.
#
# 3a. Derivatives at kinks.  The identity holds off the kinks (so no random instance
#     sees a difference), the kernel decides the rest "by cases on the kinks", but the
#     value it gives the derivative at a kink comes from SymPy's Heaviside(0) = 1/2 (or a
#     Piecewise derivative), not from the function.  Each left side below is the
#     derivative of a function that is identically constant (the kernel itself proves
#     it constant), so its derivative is 0 everywhere, kinks included; each right side is
#     nonzero at a kink.

KINK_FALSE = [
    # (claim, the function differentiated (must be constant), the right side, the kink)
    ("diff(relu(z) - step(z)*z, z) = -1/2*step(z)*step(-z)",
     lambda t: relu(t) - step(t) * t, lambda t: -step(t) * step(-t) / 2, 0),
    ("diff(relu(z) - leaky_relu(z, 0), z) = -1/2*step(z)*step(-z)",
     lambda t: relu(t) - leaky(t, 0), lambda t: -step(t) * step(-t) / 2, 0),
    ("diff(hard_tanh(z) - relu(z + 1) + relu(z - 1), z) = -1/2*step(z - 1)*step(1 - z) - 1/2*step(z + 1)*step(-z - 1)",
     lambda t: max(MP(-1), min(MP(1), t)) - relu(t + 1) + relu(t - 1),
     lambda t: -step(t - 1) * step(1 - t) / 2 - step(t + 1) * step(-t - 1) / 2, 1),
]


@pytest.mark.parametrize("claim,fun,rhs,kink", KINK_FALSE, ids=[c for c, *_ in KINK_FALSE])
def test_derivative_at_a_kink_of_a_constant_function_is_not_proved(claim, fun, rhs, kink):
    grid = [MP(k) / 4 for k in range(-12, 13)]
    values = {fun(t) for t in grid}
    assert len(values) == 1, "the reference says the function is not constant: fix the test"
    h = MP(10) ** -20
    derivative_at_kink = (fun(MP(kink) + h) - fun(MP(kink) - h)) / (2 * h)
    assert abs(derivative_at_kink) < 1e-15 and rhs(MP(kink)) != 0  # the step is false at the kink
    verdict, shown = verdict_of("scalar z", claim)
    assert verdict != "proved", (claim, shown)


MATRIX_KINK_FALSE = [
    # relu(A) - leaky_relu(A, 0) is the zero matrix (the kernel proves it, COOKBOOK above);
    # the gradient of sum(0) is 0, but the right side is -1/2 wherever A has a zero entry.
    "grad(sum(relu(A) - leaky_relu(A, 0)), A) = -1/2*hadamard(step(A), step(-A))",
    "grad(sum(relu(x) - leaky_relu(x, 0)), x) = -1/2*hadamard(step(x), step(-x))",
]


@pytest.mark.parametrize("claim", MATRIX_KINK_FALSE)
def test_gradient_at_a_kink_of_a_constant_function_is_not_proved(claim):
    # the reference: both functions agree everywhere, so the loss is the constant 0
    grid = [MP(k) / 4 for k in range(-12, 13)]
    assert all(relu(t) - leaky(t, 0) == 0 for t in grid)
    assert -step(MP(0)) * step(MP(0)) / 2 != 0  # the right side at a zero entry
    verdict, shown = verdict_of(HEADER, claim)
    assert verdict != "proved", (claim, shown)


def test_relu_derivative_at_zero_follows_the_documented_convention():
    """The catalogue (symnet activations, docs/activations.md) takes relu'(0) = 0; the
    kernel's derivative_body means to (Heaviside(u, 0)) but SymPy 1.14's Heaviside always
    carries two arguments, so relu'(0) = 1/2.  A step stating relu'(0) = 1/2 must not be
    proved; the documented value must not be refuted."""
    half = "grad(sum(relu(A)), A) = step(A) - 1/2*hadamard(step(A), step(-A))"
    zero = "grad(sum(relu(A)), A) = step(A) - hadamard(step(A), step(-A))"
    assert step(MP(0)) - step(MP(0)) ** 2 / 2 == MP(1) / 2  # the first right side at 0
    v_half, s_half = verdict_of(HEADER, half)
    v_zero, s_zero = verdict_of(HEADER, zero)
    assert v_half != "proved", s_half
    assert v_zero != "refuted", s_zero
    scalar_half = "diff(relu(z), z) = step(z) - 1/2*step(z)*step(-z)"
    v, s = verdict_of("scalar z", scalar_half)
    assert v != "proved", s


# 3b. A matrix declared invertible may later be *defined* as a singular expression; the
#     kernel cancels M inv(M) without looking at the definition, and the judge, which
#     skips the singular instances, agrees on the one instance it could evaluate.

SINGULAR_DEFINITIONS = [
    # x x^T has rank 1: singular for every n >= 2 (the judge evaluates only n = 1)
    ("dim n\nmatrix x: n x 1\nmatrix M: n x n invertible\ndefine M = x*x.T\n", "M*inv(M) = eye(n)",
     lambda rng: (lambda x: x @ x.T)(rnd(3, 1, rng))),
    ("dim n\nmatrix x: n x 1\nmatrix M: n x n invertible\ndefine M = x*x.T\n", "det(M)*det(inv(M)) = 1",
     lambda rng: (lambda x: x @ x.T)(rnd(3, 1, rng))),
    # A - A^T is skew-symmetric: singular for every odd n
    ("dim n\nmatrix A: n x n\nmatrix M: n x n invertible\ndefine M = A - A.T\n", "M*inv(M) = eye(n)",
     lambda rng: (lambda A: A - A.T)(rnd(3, 3, rng))),
]


@pytest.mark.parametrize("header,claim,example", SINGULAR_DEFINITIONS,
                         ids=[f"{h.splitlines()[-1]} : {c}" for h, c, _ in SINGULAR_DEFINITIONS])
def test_singular_definition_of_an_invertible_name_proves_nothing(header, claim, example):
    m = example(np.random.default_rng(3))
    assert abs(det(m)) < MP(10) ** -30  # the reference: the defined matrix is singular (n = 3)
    r = check_text(header.strip() + "\n" + claim + "\n", "adv.deriv")
    if r.malformed:  # the definition itself is refused: a name declared invertible
        assert "invertible" in r.error_message  # can be defined only as an invertible product
        return
    ((verdict, shown),) = [(s.verdict, s.shown) for c in r.chains for s in c.steps]
    assert verdict != "proved", (claim, shown)


# 3c. Missing side conditions: a log inside grad(L, X) is undefined on half the space,
#     yet the step is proved with no condition at all (compare exp(log(a)) = a, which is
#     "proved, for a > 0").

MISSING_CONDITIONS = [
    "grad(log(det(M)), M) = inv(M).T",                  # needs det(M) > 0
    "grad(log(a.T*x), x)*trace(a.T*x) = a",              # needs a.T*x > 0
    "grad(log(trace(A)), A)*trace(A) = eye(n)",          # needs trace(A) > 0
]


@pytest.mark.parametrize("claim", MISSING_CONDITIONS)
def test_log_inside_a_gradient_states_its_side_condition(claim):
    # the reference: for n = 3 one of M, -M has a negative determinant, one of x, -x a
    # negative a.T*x and one of A, -A a negative trace, where the log is undefined
    v = instance()
    assert min(det(v["M"]), det(-v["M"])) < 0 and min(sc(v["a"].T @ v["x"]), -sc(v["a"].T @ v["x"])) < 0
    verdict, shown = verdict_of(HEADER, claim)
    assert shown != "proved", (claim, shown)  # unproved, or proved with a stated condition


# ---------------------------------------------------------------------------
# 4. Kink-only falsity (a measure-zero set no random instance hits): never proved.

KINK_ONLY_FALSE = [
    # (claim, scalar form of lhs - rhs at the kink, declarations)
    ("hadamard(step(A), step(-A)) = zeros(n, n)", lambda: step(MP(0)) * step(MP(0))),
    ("step(A) + step(-A) = ones(n, n)", lambda: step(MP(0)) + step(MP(0)) - 1),
    ("hadamard(step(A), step(-A)) = step(A) - step(A)", lambda: step(MP(0)) * step(MP(0))),
    ("grad(sum(relu(A)), A) = step(A)", lambda: step(MP(0)) - 0),  # relu'(0) = 0 (catalogue)
    ("jacobian(relu(x), x) = diag(step(x))", lambda: step(MP(0)) - 0),
]


@pytest.mark.parametrize("claim,gap", KINK_ONLY_FALSE, ids=[c for c, _ in KINK_ONLY_FALSE])
def test_identity_false_only_at_a_kink_is_not_proved(claim, gap):
    assert gap() != 0
    verdict, shown = verdict_of(HEADER, claim)
    assert verdict != "proved", (claim, shown)


SCALAR_KINK_ONLY_FALSE = [
    ("step(z) = diff(relu(z), z)", lambda: step(MP(0)) - 0),
    ("diff(relu(z), z) = step(z)", lambda: step(MP(0)) - 0),
    ("diff(hard_tanh(z), z) = step(z + 1) - step(z - 1)", lambda: step(MP(0)) - step(MP(-2)) - 0),  # at z = -1
    ("relu(z) + relu(-z) = z", lambda: relu(MP(-1)) + relu(MP(1)) - (-1)),
    ("relu(z - 1) = relu(z) - 1", lambda: relu(MP(-1)) - relu(MP(0)) + 1),
]


@pytest.mark.parametrize("claim,gap", SCALAR_KINK_ONLY_FALSE, ids=[c for c, _ in SCALAR_KINK_ONLY_FALSE])
def test_scalar_identity_false_at_a_point_is_not_proved(claim, gap):
    assert gap() != 0
    verdict, shown = verdict_of("scalar z", claim)
    assert verdict != "proved", (claim, shown)


TRUE_WITH_KINKS = [
    ("abs(z) = relu(z) + relu(-z)", lambda t: abs(t) - relu(t) - relu(-t)),
    ("z = relu(z) - relu(-z)", lambda t: t - relu(t) + relu(-t)),
    ("hard_tanh(z) - relu(z + 1) + relu(z - 1) = -1",
     lambda t: max(MP(-1), min(MP(1), t)) - relu(t + 1) + relu(t - 1) + 1),
    ("leaky_relu(z, 0) = relu(z)", lambda t: leaky(t, 0) - relu(t)),
    ("relu(z) - step(z)*z = 0", lambda t: relu(t) - step(t) * t),
]


@pytest.mark.parametrize("claim,gap", TRUE_WITH_KINKS, ids=[c for c, _ in TRUE_WITH_KINKS])
def test_piecewise_identity_is_proved(claim, gap):
    grid = [MP(k) / 4 for k in range(-12, 13)]
    assert all(gap(t) == 0 for t in grid)
    verdict, shown = verdict_of("scalar z", claim)
    assert verdict == "proved", (claim, shown)


# ---------------------------------------------------------------------------
# 5. True identities inside the claimed capabilities that the kernel leaves unproved
#    (never refuted; these assert proved, so each failure is an incompleteness finding).

INCOMPLETE = [
    # a 1x1 matrix is its scalar, and abs = relu + relu(-) lifts entry by entry ...
    ("relu(x.T*a) + relu(-(x.T*a)) = abs(x.T*a)",
     lambda v: (relu(sc(v["x"].T @ v["a"])) + relu(-sc(v["x"].T @ v["a"])), abs(sc(v["x"].T @ v["a"])))),
    ("relu(P*Q) - relu(-(P*Q)) = P*Q",
     lambda v: (relu(sc(v["P"] @ v["Q"])) - relu(-sc(v["P"] @ v["Q"])), sc(v["P"] @ v["Q"]))),
    # ... a Jacobian of a nonlinear map with a diag(...) atom ...
    ("jacobian(sigmoid(x), x) = diag(hadamard(sigmoid(x), ones(n, 1) - sigmoid(x)))",
     lambda v: (fd_jac(lambda x: ew(sigmoid, x), v["x"]),
                diag(ew(sigmoid, v["x"]) * (1 - ew(sigmoid, v["x"]))))),
    ("jacobian(x*(a.T*x), x) = (a.T*x)*eye(n) + x*a.T",
     lambda v: (fd_jac(lambda x: x @ (v["a"].T @ x), v["x"]),
                sc(v["a"].T @ v["x"]) * eye(N) + v["x"] @ v["a"].T)),
    # ... a gradient through det and a scalar function (Cookbook (57), every invertible M) ...
    ("grad(log(abs(det(M))), M) = inv(M).T",
     lambda v: (fd_grad(lambda X: mpmath.log(abs(det(X))), v["M"]), inv(v["M"]).T)),
    # ... an inverse cancelling inside a trace (cyclic invariance) ...
    ("trace(M*A*inv(M)) = trace(A)", lambda v: (np.trace(v["M"] @ v["A"] @ inv(v["M"])), np.trace(v["A"]))),
    # ... a Hadamard product of functions of one argument (the identity is one of them)
    ("hadamard(A, step(A)) = relu(A)", lambda v: (v["A"] * ew(step, v["A"]), ew(relu, v["A"]))),
    # ... a Hadamard product distributing over a sum that was folded into one function ...
    ("hadamard(tanh(A), tanh(B)) + tanh(A) = hadamard(tanh(A), tanh(B) + ones(n, n))",
     lambda v: (ew(mpmath.tanh, v["A"]) * ew(mpmath.tanh, v["B"]) + ew(mpmath.tanh, v["A"]),
                ew(mpmath.tanh, v["A"]) * (ew(mpmath.tanh, v["B"]) + 1))),
    ("hadamard(sigmoid(A) + sigmoid(-A), tanh(B)) = tanh(B)",
     lambda v: ((ew(sigmoid, v["A"]) + ew(sigmoid, -v["A"])) * ew(mpmath.tanh, v["B"]), ew(mpmath.tanh, v["B"]))),
    # ... and the Jacobian of a 1 x 1 map
    ("jacobian(x.T*a, x) = a.T", lambda v: (fd_jac(lambda x: x.T @ v["a"], v["x"]), v["a"].T)),
]


#: Still outside the decided fragment (docs/calculus.md, "What stays outside"): they must
#: never be refuted; unproved is the honest answer until the kernel learns them.
OUTSIDE = {
    "jacobian(x*(a.T*x), x) = (a.T*x)*eye(n) + x*a.T",  # a scalar factor of the variable in a Jacobian
    "grad(log(abs(det(M))), M) = inv(M).T",  # a derivative through abs: its kink is a convention
    "hadamard(A, step(A)) = relu(A)",  # the argument itself as a factor of a function of it
    "hadamard(tanh(A), tanh(B)) + tanh(A) = hadamard(tanh(A), tanh(B) + ones(n, n))",  # two arguments
    "hadamard(sigmoid(A) + sigmoid(-A), tanh(B)) = tanh(B)",  # two arguments
}


@pytest.mark.parametrize("claim,ref", INCOMPLETE, ids=[c for c, _ in INCOMPLETE])
def test_claimed_capability_decides_true_identity(claim, ref):
    lhs, rhs = ref(instance())
    assert maxdiff(lhs, rhs) < 1e-15, "the reference says this identity is false: fix the test"
    verdict, shown = verdict_of(HEADER, claim)
    assert verdict != "refuted", (claim, shown)
    if claim not in OUTSIDE:
        assert verdict == "proved", (claim, shown)


def test_inverse_of_a_matrix_not_declared_invertible_is_an_error():
    for bad in ("inv(A)", "inv(A*M)", "inv(c*M)", "inv(-M + A)", "A**-1", "inv(W)"):
        r = check_text(HEADER + f"{bad} = {bad}\n", "adv.deriv")
        assert r.malformed, bad
