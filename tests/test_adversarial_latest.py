"""Red-team cases for the newest rules: 1x1 matrices as scalars, Hadamard products with
the identity, the shared-value numeric judge, jacobian/hessian and J^T J forms.

Each case's truth is decided independently with plain NumPy (n = 3, fixed seed); the
checker must never prove a false step nor refute a true one."""
import numpy as np
import pytest

from symnet.notes.checkfile import check_text

N = 3
RNG = np.random.default_rng(12345)
V = {k: RNG.standard_normal(s) for k, s in {
    "A": (N, N), "B": (N, N), "C": (N, N), "x": (N, 1), "a": (N, 1), "b": (N, 1),
    "u": (1, N), "w": (N, 1), "r": (1, N), "y": (1, 1), "t": (1, 1), "M": (4, N),
    "z": (4, 1), "P": (2, 3), "Q": (3, 2)}.items()}
I = np.eye(N)


def sg(m):
    return 1 / (1 + np.exp(-m))


A, B, C, x, a, b, u, w, y, t, M, z, P, Q = (V[k] for k in "A B C x a b u w y t M z P Q".split())
p = sg(u @ w)
sp = (p * (1 - p)).item()
th = np.tanh(M @ x)

SQ = "dim n\nmatrix A, B, C: n x n\n"
VEC = "dim n\nmatrix x: n x 1, a: n x 1, b: n x 1, A: n x n, y: 1x1\n"
NET = "dim n\nmatrix u: 1 x n, w: n x 1\nscalar t\ndefine p = sigmoid(u*w)\ndefine J = jacobian(p, w)\n"
LS = "dim n, m\nmatrix M: m x n, x: n x 1, z: m x 1\n"

# (text, lhs value, rhs value) -- truth by NumPy
CASES = [
    # 1. scalars and 1x1 matrices
    (VEC + "y - 1 = 1 - y", y - 1, 1 - y),
    (VEC + "y - 1 = -(1 - y)", y - 1, -(1 - y)),
    (VEC + "b.T*(x.T*a) = x.T*a*b.T", b.T * (x.T @ a).item(), (x.T @ a).item() * b.T),
    (VEC + "b.T*(x.T*a) = a.T*b*x.T", b.T * (x.T @ a).item(), (a.T @ b).item() * x.T),
    (VEC + "x*a.T*b = a.T*b*x", x @ a.T @ b, (a.T @ b).item() * x),
    (VEC + "x*a.T*b = a.T*x*b", x @ a.T @ b, (a.T @ x).item() * b),
    (VEC + "x.T*A*x = x.T*A.T*x", x.T @ A @ x, x.T @ A.T @ x),
    (VEC + "x.T*A*a = a.T*A*x", x.T @ A @ a, a.T @ A @ x),
    (VEC + "x*a.T*b*x.T = (a.T*x)*b*x.T", x @ a.T @ b @ x.T, (a.T @ x).item() * b @ x.T),
    (VEC + "trace(x*a.T*b*x.T) = (a.T*x)*(b.T*x)", np.trace(x @ a.T @ b @ x.T), (a.T @ x).item() * (b.T @ x).item()),
    ("dim n\nmatrix x: 1 x n, w: n x 1\nsigmoid(x*w) + 1 = 1 + sigmoid(-w.T*x.T)", sg(u @ w) + 1, 1 + sg(-w.T @ u.T)),
    ("dim n\nmatrix x: 1 x n, w: n x 1\nsigmoid(x*w) - 1 = -sigmoid(-x*w)", sg(u @ w) - 1, -sg(-u @ w)),
    ("dim n\nmatrix x: 1 x n, w: n x 1\nexp(x*w)*x = exp(trace(x.T*w.T))*w.T", np.exp(u @ w).item() * u, np.exp(np.trace(u.T @ w.T)) * w.T),
    ("matrix A: 1x1, x: 3x1, y: 1x3\ntrace(x*A*y) = trace(A)*trace(y*x) + 1", np.trace(x @ y @ u), y.item() * (u @ x).item() + 1),
    (VEC.replace("y: 1x1", "y: 1x1, w: n x 1") + "grad((x.T*w - y)**2, w) = 2*(w.T*x - y)*x", 2 * (x.T @ w - y).item() * x, 2 * (w.T @ x - y).item() * x),
    (VEC.replace("y: 1x1", "y: 1x1, w: n x 1") + "grad((x.T*w - y)**2, w) = 2*(x.T*w - y)*w", 2 * (x.T @ w - y).item() * x, 2 * (x.T @ w - y).item() * w),
    (VEC.replace("y: 1x1", "y: 1x1, w: n x 1") + "grad(y*log(sigmoid(x.T*w)) + (1-y)*log(1-sigmoid(x.T*w)), w) = (sigmoid(x.T*w) - y)*x",
     (y - sg(x.T @ w)).item() * x, (sg(x.T @ w) - y).item() * x),
    ("matrix y: 1x1\nsigmoid(y) + sigmoid(-y) = 2", sg(y) + sg(-y), np.array([[2.0]])),
    # 2. Hadamard with the identity
    (SQ + "hadamard(A, eye(n)) = hadamard(A.T, eye(n))", A * I, A.T * I),
    (SQ + "hadamard(A, B.T, eye(n)) = hadamard(A.T, B, eye(n))", A * B.T * I, A.T * B * I),
    (SQ + "hadamard(A, B) = hadamard(A.T, B)", A * B, A.T * B),
    (SQ + "hadamard(A*B, eye(n)) = hadamard(A.T*B.T, eye(n))", (A @ B) * I, (A.T @ B.T) * I),
    (SQ + "hadamard(A*B, eye(n)) = hadamard(B.T*A.T, eye(n))", (A @ B) * I, (B.T @ A.T) * I),
    (SQ + "hadamard(A, eye(n) + B) = hadamard(A.T, eye(n) + B)", A * (I + B), A.T * (I + B)),
    (SQ + "hadamard(A, ones(n, n) - eye(n)) = hadamard(A.T, ones(n, n) - eye(n))", A * (1 - I), A.T * (1 - I)),
    (SQ + "hadamard(A, eye(n)*B) = hadamard(A.T, B*eye(n))", A * B, A.T * B),
    (SQ + "hadamard(A, exp(eye(n))) = hadamard(A.T, exp(eye(n)))", A * np.exp(I), A.T * np.exp(I)),
    (SQ + "hadamard(A, sigmoid(eye(n))) = hadamard(A.T, sigmoid(eye(n)))", A * sg(I), A.T * sg(I)),
    (SQ + "hadamard(A, hadamard(B, eye(n))) = hadamard(A.T, B)", A * B * I, A.T * B),
    (SQ + "hadamard(A, sigmoid(B*C), eye(n)) = hadamard(A.T, sigmoid(B.T*C.T), eye(n))", A * sg(B @ C) * I, A.T * sg(B.T @ C.T) * I),
    (SQ + "hadamard(A, sigmoid(B*C), eye(n)) = hadamard(A.T, sigmoid(C.T*B.T), eye(n))", A * sg(B @ C) * I, A.T * sg(C.T @ B.T) * I),
    (SQ + "hadamard(A*A, eye(n)) = hadamard(A.T*A, eye(n))", (A @ A) * I, (A.T @ A) * I),
    (SQ + "hadamard(A, eye(n))*B = hadamard(A, eye(n))*B.T", (A * I) @ B, (A * I) @ B.T),
    (SQ + "trace(hadamard(A, eye(n))*B) = trace(hadamard(A, eye(n))*B.T)", np.trace((A * I) @ B), np.trace((A * I) @ B.T)),
    (SQ + "hadamard(A, eye(n))*B = B*hadamard(A, eye(n))", (A * I) @ B, B @ (A * I)),
    (SQ + "define E = eye(n) + B\nhadamard(A, E) = hadamard(A.T, E)", A * (I + B), A.T * (I + B)),
    (SQ + "define E = eye(n) + B - B\nhadamard(A, E) = hadamard(A.T, E)", A * I, A.T * I),
    ("matrix P: 2 x 3, Q: 3 x 2\nhadamard(P*Q, eye(2)) = hadamard(Q.T*P.T, eye(2))", (P @ Q) * np.eye(2), (Q.T @ P.T) * np.eye(2)),
    # 3. shared values, definitions
    ("matrix W12: 3x3, W21: 3x3\nW12 = W21", A, B),
    ("matrix ab: 3x3, ba: 3x3\nab*ba = ba*ab", A @ B, B @ A),
    (SQ + "define D = A*B - B*A\nD = zeros(n, n)", A @ B - B @ A, np.zeros((N, N))),
    # 4. jacobian, hessian, Gauss-Newton
    (NET + "J = hadamard(p, 1 - p)*u", sp * u, sp * u),
    (NET + "J = hadamard(p, 1 - p)*w.T", sp * u, sp * w.T),
    (NET + "J.T*J = hadamard(p, 1 - p)*hadamard(p, 1 - p)*u*u.T", sp**2 * u.T @ u, sp**2 * (u @ u.T)),
    (NET + "J.T*J = hadamard(p, 1 - p)*u.T*u", sp**2 * u.T @ u, sp * u.T @ u),
    (NET + "J*J.T = (p*(1 - p))**2*u*u.T", sp**2 * u @ u.T, sp**2 * u @ u.T),
    (NET + "jacobian(p, w) = grad(p, w)", sp * u, sp * u.T),
    (NET + "hessian(p, w) = p*(1-p)*(1-2*p)*u*u.T", sp * (1 - 2 * p.item()) * u.T @ u, sp * (1 - 2 * p.item()) * (u @ u.T)),
    (NET + "define L = (p - t)**2\ngrad(L, w) = 2*(p - t)*p*(1 - p)*u.T", 2 * (p - t).item() * sp * u.T, 2 * (p - t).item() * sp * u.T),
    (NET + "define L = (p - t)**2\nhessian(L, w) = 2*jacobian(p, w).T*jacobian(p, w)",
     2 * sp**2 * u.T @ u + 2 * (p - t).item() * sp * (1 - 2 * p.item()) * u.T @ u, 2 * sp**2 * u.T @ u),
    ("dim n\nmatrix x: n x 1, A: n x n\njacobian(x.T*A*x, x) = 2*x.T*A", x.T @ (A + A.T), 2 * x.T @ A),
    ("dim n\nmatrix x: n x 1, A: n x n\nhessian(x.T*A*x, x) = 2*A", A + A.T, 2 * A),
    (LS + "define r = M*x - z\ndefine J = jacobian(r, x)\nJ.T*r = grad(r.T*r, x)", M.T @ (M @ x - z), 2 * M.T @ (M @ x - z)),
    (LS + "define r = M*x - z\nhessian(r.T*r, x) = 2*M.T*M", 2 * M.T @ M, 2 * M.T @ M),
    (LS + "define r = tanh(M*x) - z\ndefine J = jacobian(r, x)\nJ.T*J = A.T*diag(ones(m,1) - hadamard(tanh(M*x), tanh(M*x)))*M".replace("A.T", "M.T"),
     M.T @ np.diag((1 - th**2).ravel())**2 @ M, M.T @ np.diag((1 - th**2).ravel()) @ M),
    ("matrix x: 1 x 3, w: 3 x 1\njacobian(w*(x*w), w) = x.T*w.T + (x*w)*eye(3)", w @ u + (u @ w).item() * I, u.T @ w.T + (u @ w).item() * I),
]


@pytest.mark.parametrize("text,lhs,rhs", CASES, ids=[c[0].splitlines()[-1][:60] for c in CASES])
def test_never_wrong(text, lhs, rhs):
    truth = bool(np.allclose(np.asarray(lhs, float), np.asarray(rhs, float), rtol=1e-9, atol=1e-9))
    r = check_text(text + "\n", "t.deriv")
    assert not r.malformed, r.error_message
    last = [s for c in r.chains for s in c.steps][-1]
    if truth:
        assert last.verdict != "refuted", (text, last.detail)
    else:
        assert last.verdict != "proved", (text, last.detail)
