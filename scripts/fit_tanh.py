"""Fit the float32 tanh of fastrnn/kernels/activations.py: tanh x = x P(x^2) / Q(x^2),
P and Q of degree 4 with Q(0) = 1, on [0, 9] (beyond, tanh is 1 in float32), for the
least relative error: linear least squares on y Q(s) - x P(s) = 0 (s = x^2), reweighted
by 1/Q from the last pass and by each point's error, then checked in float32 Horner
arithmetic on a dense grid of [-9, 9] and small values.

    python scripts/fit_tanh.py
"""
import numpy as np

DEGREES = 4, 4


def fit(x, y, npow, nq, passes=30):
    s = x * x
    w, q_prev = 1 / y, np.ones_like(x)
    for _ in range(passes):
        A = np.hstack([np.stack([x * s**k for k in range(npow + 1)], 1),
                       -np.stack([y * s**k for k in range(1, nq + 1)], 1)])
        ww = w / np.abs(q_prev)
        coef = np.linalg.lstsq(A * ww[:, None], y * ww, rcond=None)[0]
        p, q = coef[:npow + 1], np.concatenate([[1.0], coef[npow + 1:]])
        q_prev = np.polyval(q[::-1], s)
        err = np.abs(x * np.polyval(p[::-1], s) / q_prev - y) / y
        w = w * (1 + 50 * err / err.max())
    return p, q


def float32_tanh(x, p, q):
    c = np.clip(x, -9, 9).astype(np.float32)
    s = c * c
    P, Q = np.float32(p[-1]), np.float32(q[-1])
    for k in p[-2::-1]:
        P = P * s + np.float32(k)
    for k in q[-2::-1]:
        Q = Q * s + np.float32(k)
    return np.clip(c * P / Q, -1, 1)


def main():
    x = np.concatenate([np.linspace(0, 9, 200001)[1:], np.geomspace(1e-6, 1, 2000)])
    p, q = fit(x, np.tanh(x), *DEGREES)
    grid = np.concatenate([np.linspace(-9, 9, 2000001), np.geomspace(1e-8, 1e-2, 10000)])
    grid = grid.astype(np.float32)
    exact = np.tanh(grid.astype(np.float64))
    rel = np.abs(float32_tanh(grid, p, q) - exact) / np.maximum(np.abs(exact), 1e-30)
    print("P:", ", ".join(f"{v:.8e}" for v in p))
    print("Q:", ", ".join(f"{v:.8e}" for v in q))
    print(f"largest relative error in float32: {rel.max():.2e}")


if __name__ == "__main__":
    main()
