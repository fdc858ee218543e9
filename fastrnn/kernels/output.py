"""The output layer shared by every family: logits y = Why h_top + by, softmax and
cross-entropy, and their gradients.

The softmax is min-char-rnn's to the bit in float64: exp from the C library and numpy's
pairwise summation for the normaliser.
"""
import numpy as np
from numba import types
from numba.extending import overload

from .activations import exp_limit
from .jit import jit, jit_nrt
from .products import SMALL, matmul_rows, matmul_rows_t, outer_sum, row_sum_rev
from .records import Masked
from .team import after, close, first, items, span


@jit
def _pairwise_block(a, lo, n):
    """numpy's pairwise sum of a[lo:lo+n] for n <= 128: 8 running sums, then the rest."""
    if n < 8:
        res = a[lo]
        for i in range(lo + 1, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@jit_nrt
def pairwise_sum(a, n):
    """Sum of a[:n] (n >= 1) in exactly numpy's order: np.add.reduce sums blocks of up to
    128 with _pairwise_block and adds the two halves of anything larger, splitting at a
    multiple of 8. The halving recursion is unrolled onto a small stack (Numba's cache
    cannot hold a self-recursive function)."""
    if n <= 128:  # (n - n: a zero that is not a constant, so both calls share one copy)
        return _pairwise_block(a, n - n, n)
    # post-order walk of the halving tree; stage 0: start, 1: left half pending,
    # 2: right half pending. A finished node leaves its sum in `result`.
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)
    lefts = np.empty(64, a.dtype)
    top = 0
    los[0], ns[0] = 0, n
    result = a[0]
    while top >= 0:
        lo, m = los[top], ns[top]
        half = m // 2
        half -= half % 8
        if m <= 128:
            result = _pairwise_block(a, lo, m)
            top -= 1
        elif stage[top] == 0:
            stage[top] = 1
            top += 1
            los[top], ns[top], stage[top] = lo, half, 0
        elif stage[top] == 1:
            lefts[top] = result
            stage[top] = 2
            top += 1
            los[top], ns[top], stage[top] = lo + half, m - half, 0
        else:
            result = lefts[top] + result
            top -= 1
    return result


@jit
def softmax_xent(y, target, scale):
    """Turns one row of logits y (V,) into (softmax(y) - onehot(target)) * scale in place
    and returns -log softmax(y)[target].

    The probabilities are min-char-rnn's exp(y) / sum(exp(y)) to the bit while the
    largest logit is within +-exp_limit; beyond that the maximum is subtracted first,
    so exp() can neither overflow nor underflow every term. The loss is formed as
    log(sum) - y[target], which stays finite even when the probability underflows.
    """
    V = y.size
    m = y[0]
    for v in range(1, V):
        m = max(m, y[v])
    limit = exp_limit(m)
    shift = m if (m > limit or m < -limit) else m - m
    y_tgt = y[target] - shift
    for v in range(V):
        y[v] = np.exp(y[v] - shift)
    s = pairwise_sum(y, V)
    for v in range(V):
        y[v] = y[v] / s
    if scale != 1:
        for v in range(V):
            y[v] *= scale
    y[target] -= scale
    return np.log(s) - y_tgt


@jit
def output_forward(ys, top, T, targets, scale, Why, by, sums, path, team):
    """Logits, then softmax gradients in place, for T steps. ys: (T, B, V) out; top:
    (T+1, B, H) the top layer's states; targets: (T, B), or a Masked whose -1 targets
    count for nothing (their rows of ys become zeros). Returns n, the items the loss
    was summed in: each item's sum, in step order, is left in sums[:n] (sums: (W,)
    float64), to be added in order by whoever needs the total."""
    _, B, V = ys.shape
    H = top.shape[2]
    matmul_rows(ys.reshape(-1, V)[:T * B], top.reshape(-1, H)[B:(T + 1) * B], Why, path,
                team)
    n = items(team, T, T * B * V, SMALL)
    i = first(team, n)
    while i >= 0:
        t0, t1 = span(i, n, T, 1)
        sums[i] = softmax_steps(ys, targets, scale, by, t0, t1)
        i = after(team, n, i)
    close(team, n)
    return n


@jit
def add_loss(total, sums, n, reset, team):
    """As one item: total[0] += the n items' losses in sums (from 0 when reset)."""
    i = first(team, 1)
    if i >= 0:
        loss = 0.0
        for j in range(n):
            loss += sums[j]
        if reset:
            total[0] = 0.0
        total[0] += loss
        after(team, 1, i)
    close(team, 1)


@jit
def softmax_steps(ys, targets, scale, by, t0, t1):
    """Steps t0..t1-1 of output_forward after the logits' product; their summed loss."""
    loss = 0.0
    for t in range(t0, t1):
        for b in range(ys.shape[1]):
            y, target = ys[t, b], target_of(targets, t, b)
            if maskable(targets) and target < 0:
                # no target: no loss, and no gradient from this row
                for v in range(y.size):
                    y[v] = 0
                continue
            for v in range(y.size):
                y[v] += by[v]
            loss += softmax_xent(y, target, scale)
    return loss


def _masked(targets):
    return isinstance(targets, types.BaseNamedTuple) and targets.instance_class is Masked


def target_of(targets, t, b):
    """The target of step t of stream b: its id, or -1 for none (a Masked's only)."""


@overload(target_of, inline="always")
def _target_of(targets, t, b):
    if _masked(targets):
        return lambda targets, t, b: targets.ids[t, b]
    return lambda targets, t, b: targets[t, b]


def maskable(targets):
    """Whether targets can say none (a Masked), as a constant: the streams' targets
    compile no test for -1."""


@overload(maskable, inline="always")
def _maskable(targets):
    masked = _masked(targets)
    return lambda targets: masked


@jit
def output_backward(dWhy, dby, dh, dys, top, T, Why, part, path, team):
    """dWhy (V, H), dby (V,) overwritten; dh (T, B, H) receives Why^T dy per step."""
    _, B, H = dh.shape
    dy2 = dys.reshape(-1, dys.shape[2])[:T * B]
    matmul_rows_t(dh.reshape(-1, H)[:T * B], dy2, Why, path, team)
    outer_sum(dWhy, dy2, top.reshape(-1, H)[B:(T + 1) * B], part, path, team)
    row_sum_rev(dby, dy2, team)
