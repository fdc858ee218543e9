"""Kernel pieces shared by every model family: activations, the softmax output layer,
gradient sums in min-char-rnn's order, and the fused optimizer update.

Exactness: in float64 fastrnn reproduces min-char-rnn bit for bit, because its training
dynamics turn a difference in the last bit into an O(1) difference within a few hundred
iterations. So these pieces do numpy's arithmetic in numpy's order: matrix-vector
products through the same BLAS gemv, sums over time taken last step first with products
rounded before they are added (no FMA), numpy's pairwise summation for the softmax
normaliser, and exp/log/tanh from the C library.
"""
import numpy as np
from numba import prange, types
from numba.extending import overload

from .jit import jit, pjit_inline
from .simd import outer_sum_exact


def tanh(x):
    """tanh of one float: the C library's in float64; in float32 a continued fraction
    that LLVM can vectorise, within 1e-6 relative of the exact value and 10x faster."""
    return np.tanh(x)


@overload(tanh)
def _tanh_overload(x):
    if x == types.float32:
        return _tanh_float32
    return lambda x: np.tanh(x)


def _tanh_float32(x):
    # Lambert's continued fraction tanh x = x / (1 + x^2/(3 + x^2/(5 + ...))), 12 terms,
    # evaluated through its convergents P/Q so that there is a single division.
    # |x| is clamped at 9, where tanh is 1 to float32 precision; NaN passes through.
    c = min(max(x, np.float32(-9.0)), np.float32(9.0))
    c2 = c * c
    p0, q0 = np.float32(1.0), np.float32(0.0)
    p1, q1 = np.float32(1.0), np.float32(1.0)
    for k in range(1, 13):
        b = np.float32(2 * k + 1)
        p0, p1 = p1, b * p1 + c2 * p0
        q0, q1 = q1, b * q1 + c2 * q0
    return c * q1 / p1


def exp_limit(x):
    """The largest |x| for which exp(x) is comfortably finite and nonzero in x's type."""
    return 700.0


@overload(exp_limit)
def _exp_limit_overload(x):
    if x == types.float32:
        return lambda x: np.float32(80.0)
    return lambda x: 700.0


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


@jit
def pairwise_sum(a, n):
    """Sum of a[:n] (n >= 1) in exactly numpy's order: np.add.reduce sums blocks of up to
    128 with _pairwise_block and adds the two halves of anything larger, splitting at a
    multiple of 8. The halving recursion is unrolled onto a small stack (Numba's cache
    cannot hold a self-recursive function)."""
    if n <= 128:
        return _pairwise_block(a, 0, n)
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
def span(ch, chunks, n, align):
    """The part [lo, hi) of range(n) that chunk ch of `chunks` takes, its boundaries on
    multiples of align."""
    lo = (ch * n // chunks) // align * align
    hi = n if ch == chunks - 1 else ((ch + 1) * n // chunks) // align * align
    return lo, hi


# The pieces below split their work across `chunks` threads (prange) in ways that leave
# every result element's arithmetic as it is with one thread, unless they say otherwise.
# They are inlined into their callers: Numba cannot cache a function that calls a
# parallel one, and the thread count arrives as an argument for the same reason. With
# one chunk they skip prange, whose start costs about a microsecond even then, and so
# does small work (under SMALL multiply-adds).
SMALL = 65536


@pjit_inline
def matmul_rows(out, X, W, exact, chunks):
    """out (R, M) = X (R, N) @ W.T, W: (M, N). exact: one gemv per row, as min-char-rnn's
    np.dot(W, x) does; otherwise matrix products (a gemv still when R is 1) over the
    threads' slices of the rows (their rounding depends on the split)."""
    _split_rows(out, X, W, exact, False, chunks)


@pjit_inline
def matmul_rows_t(out, X, W, exact, chunks):
    """out (R, N) = X (R, M) @ W, W: (M, N): min-char-rnn's np.dot(W.T, dy) per row."""
    _split_rows(out, X, W, exact, True, chunks)


@pjit_inline
def _split_rows(out, X, W, exact, transposed, chunks):
    R = X.shape[0]
    chunks = max(1, min(chunks, R, X.size * out.shape[1] // SMALL))
    if chunks == 1:
        _row_products(out, X, W, exact, transposed)
        return
    for ch in prange(chunks):
        r0, r1 = span(ch, chunks, R, 1)
        _row_products(out[r0:r1], X[r0:r1], W, exact, transposed)


@jit
def _row_products(out, X, W, exact, transposed):
    if exact or X.shape[0] == 1:
        for r in range(X.shape[0]):
            if transposed:
                np.dot(W.T, X[r], out[r])
            else:
                np.dot(W, X[r], out[r])
    elif transposed:
        np.dot(X, W, out)
    else:
        np.dot(X, W.T, out)


@pjit_inline
def outer_sum(dW, dY, X, exact, part, chunks):
    """dW (M, N) = sum over rows r of outer(dY[r], X[r]); dY: (R, M), X: (R, N).

    exact: min-char-rnn's `dW += np.dot(dy, x.T)` over reversed time, each product
    rounded before it is added, each thread taking a slice of dW's rows. Otherwise one
    matrix product per thread over its slice of the R rows, summed at the end (so the
    rounding depends on the split); part: (chunks, >= M, N) scratch."""
    M, N = dW.shape
    R = dY.shape[0]
    chunks = max(1, min(chunks, R * M * N // SMALL))
    if exact:
        chunks = max(1, min(chunks, M // 4))
        if chunks == 1:
            outer_sum_exact(dW, dY, X)
            return
        for ch in prange(chunks):
            m0, m1 = span(ch, chunks, M, 4)
            outer_sum_exact(dW[m0:m1], dY[:, m0:m1], X)
        return
    chunks = max(1, min(chunks, R))
    if chunks == 1:
        np.dot(dY.T, X, dW)
        return
    for ch in prange(chunks):
        r0, r1 = span(ch, chunks, R, 1)
        np.dot(dY[r0:r1].T, X[r0:r1], part[ch, :M])
    for ch in prange(chunks):  # the threads' sums added, each thread a slice of rows
        m0, m1 = span(ch, chunks, M, 1)
        _add_parts(dW[m0:m1], part[:chunks, m0:m1])


@jit
def _add_parts(out, parts):
    """out = parts[0] + parts[1] + ..., added in that order."""
    out[...] = parts[0]
    for i in range(1, parts.shape[0]):
        out += parts[i]


@pjit_inline
def row_sum_rev(out, A, chunks):
    """out (N,) = sum of the rows of A (R, N), last row first; each thread takes a slice
    of the columns."""
    R, N = A.shape
    chunks = max(1, min(chunks, N // 16, R * N // SMALL))
    if chunks == 1:
        _row_sum_rev(out, A)
        return
    for ch in prange(chunks):
        n0, n1 = span(ch, chunks, N, 16)
        _row_sum_rev(out[n0:n1], A[:, n0:n1])


@jit
def _row_sum_rev(out, A):
    out[:] = 0
    for r in range(A.shape[0] - 1, -1, -1):
        for n in range(A.shape[1]):
            out[n] += A[r, n]


@jit
def next_window(xs, hs, cs, data, cursor, T):
    """min-char-rnn's data pointer: reset the carried state (hs[:, 0], and cs[:, 0] for
    an LSTM) and go back to the start when the window would run past the end of the
    streams, or at iteration 0; copy the window into xs (T+1, B). Returns (p, n)."""
    p, n = cursor[0], cursor[1]
    B, S = data.shape
    if p + T + 1 >= S or n == 0:
        hs[:, 0] = 0  # reset RNN memory
        cs[:, 0] = 0
        p = 0  # go from start of data
    for t in range(T + 1):
        for b in range(B):
            xs[t, b] = data[b, p + t]
    return p, n


@jit
def window_of(xs, ids, p, T):
    """Copy the next window of the streams ids (B, S) from position p into xs: up to T
    steps and the targets of the last; returns how many steps."""
    n = min(T, ids.shape[1] - 1 - p)
    for t in range(n + 1):
        for b in range(ids.shape[0]):
            xs[t, b] = ids[b, p + t]
    return n


@jit
def layer_input(out, hs, l, T, drop, masks):
    """The input of layer l >= 1 over all steps as (T*B, H) rows: the states of layer
    l-1, through its dropout mask when drop > 0 (then written into out, (L-1, T, B, H))."""
    _, _, B, H = hs.shape
    below = hs[l - 1].reshape(-1, H)[B:(T + 1) * B]
    if drop <= 0:
        return below
    rows = out[l - 1].reshape(-1, H)[:T * B]
    m = masks[l - 1].reshape(-1, H)
    for r in range(T * B):
        for i in range(H):
            rows[r, i] = below[r, i] * m[r, i]
    return rows


@jit
def saved_layer_input(xin, hs, l, T, drop):
    """The rows layer_input returned for layer l in the forward pass."""
    _, _, B, H = hs.shape
    if drop <= 0:
        return hs[l - 1].reshape(-1, H)[B:(T + 1) * B]
    return xin[l - 1].reshape(-1, H)[:T * B]


@pjit_inline
def input_projection(xa, x, T, l, hs, inputs, Wemb, Wxh, bxh, chunks):
    """xa (T, B, G*H) = Wxh x + bxh for every step: a row gather for layer 0 (one-hot
    input), one matrix product of the layer input rows otherwise."""
    _, B, GH = xa.shape
    rows = xa.reshape(-1, GH)[:T * B]
    if l > 0:
        matmul_rows(rows, inputs, Wxh[l - 1], False, chunks)
    chunks = max(1, min(chunks, T, T * B * GH // SMALL))
    if chunks == 1:
        _add_inputs(xa, x, l, Wemb, bxh[l], 0, T)
        return
    for ch in prange(chunks):
        t0, t1 = span(ch, chunks, T, 1)
        _add_inputs(xa, x, l, Wemb, bxh[l], t0, t1)


@jit
def _add_inputs(xa, x, l, Wemb, bias, t0, t1):
    """Steps t0..t1-1 of input_projection after its matrix product."""
    for t in range(t0, t1):
        for b in range(xa.shape[1]):
            row = xa[t, b]
            if l == 0:
                e = Wemb[x[t, b]]
                for j in range(row.size):
                    row[j] = e[j] + bias[j]
            else:
                for j in range(row.size):
                    row[j] += bias[j]


@pjit_inline
def embedding_backward(dWemb, dbias, d, x, T, exact, chunks):
    """dWemb (V, G*H) = the rows of d (T, B, G*H) added into the rows of their input
    characters x (T, B), last step first: the gradient of the one-hot product; and
    dbias (G*H,) = the sum of those rows. exact: dbias summed as row_sum_rev sums (min-
    char-rnn's order) in the same pass, each thread taking a slice of the columns.
    Otherwise each thread takes the characters v with v % threads its own (split by
    columns, two threads were slower than one here: measured), and dbias is the sum of
    dWemb's rows. Either way no element's sum depends on the thread count."""
    V, GH = dWemb.shape
    work = T * x.shape[1] * GH // SMALL
    if exact:
        chunks = max(1, min(chunks, GH // 16, work))
        if chunks == 1:
            _embedding_backward(dWemb, dbias, d, x, T, 0, GH)
            return
        for ch in prange(chunks):
            j0, j1 = span(ch, chunks, GH, 16)
            _embedding_backward(dWemb, dbias, d, x, T, j0, j1)
        return
    chunks = max(1, min(chunks, V, work))
    if chunks == 1:
        _embedding_rows(dWemb, d, x, T, 0, 1)
    else:
        for ch in prange(chunks):
            _embedding_rows(dWemb, d, x, T, ch, chunks)
    _add_parts(dbias, dWemb)  # (in a jit function: here Numba would parallelise it)


@jit
def _embedding_rows(dWemb, d, x, T, ch, chunks):
    """The rows v of embedding_backward's dWemb with v % chunks == ch."""
    for v in range(ch, dWemb.shape[0], chunks):
        dWemb[v] = 0
    for t in range(T - 1, -1, -1):
        for b in range(x.shape[1] - 1, -1, -1):
            v = x[t, b]
            if v % chunks == ch:
                row, src = dWemb[v], d[t, b]
                for j in range(row.size):
                    row[j] += src[j]


@jit
def _embedding_backward(dWemb, dbias, d, x, T, j0, j1):
    """Columns j0..j1-1 of embedding_backward."""
    dWemb[:, j0:j1] = 0
    dbias[j0:j1] = 0
    for t in range(T - 1, -1, -1):
        for b in range(x.shape[1] - 1, -1, -1):
            row, src = dWemb[x[t, b]], d[t, b]
            for j in range(j0, j1):
                row[j] += src[j]
            for j in range(j0, j1):
                dbias[j] += src[j]


@pjit_inline
def input_backward(dWemb, dWxh, dbxh, dx, da, x, T, l, inputs, drop, masks, Wxh, part,
                   chunks):
    """Gradients of input_projection from da (T, B, G*H): dWemb (layer 0, row scatter)
    or dWxh[l-1], dbxh[l]; for l >= 1 also dx (T, B, H), the gradient of the layer
    below's states (through its dropout mask)."""
    _, B, GH = da.shape
    rows = da.reshape(-1, GH)[:T * B]
    if l == 0:
        embedding_backward(dWemb, dbxh[l], da, x, T, False, chunks)
    else:
        row_sum_rev(dbxh[l], rows, chunks)
        outer_sum(dWxh[l - 1], rows, inputs, False, part, chunks)
        drows = dx.reshape(-1, dx.shape[2])[:T * B]
        matmul_rows_t(drows, rows, Wxh[l - 1], False, chunks)
        if drop > 0:
            apply_mask(drows, masks[l - 1])


@jit
def apply_mask(rows, mask):
    """rows (R, H) *= the first R rows of mask (T, B, H): dropout's backward."""
    m = mask.reshape(-1, rows.shape[1])
    for r in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            rows[r, i] *= m[r, i]


def sigmoid(x):
    """The logistic function of one float; float32 goes through the fast tanh."""
    return 1.0 / (1.0 + np.exp(-x))


@overload(sigmoid)
def _sigmoid_overload(x):
    if x == types.float32:
        def impl(x):
            half = np.float32(0.5)
            return half + half * tanh(half * x)
        return impl
    return lambda x: 1.0 / (1.0 + np.exp(-x))


# Optimizers, as they are numbered in `hyper`'s caller (fastrnn.trainer.OPTIMIZERS).
ADAGRAD, RMSPROP, ADAM, SGD = 0, 1, 2, 3
# hyper: the optimizer's numbers, in the model dtype, in this order.
LR, CLIP, CLIP_NORM, EPS, BETA1, BETA2, DECAY, DECAY_EVERY = range(8)


@jit
def adagrad_update(theta, grad, mem, lr, clip, eps):
    """Clip each gradient to [-clip, clip] and take an Adagrad step, in one pass over the
    flat buffers; min-char-rnn's arithmetic in its order. Pass lr, clip and eps as
    scalars of theta's dtype so that float32 stays float32."""
    for i in range(theta.size):
        g = grad[i]  # (comparisons, not min/max, so that a NaN stays a NaN)
        if g > clip:
            g = clip
        elif g < -clip:
            g = -clip
        grad[i] = g
        mem[i] += g * g
        theta[i] += -lr * g / np.sqrt(mem[i] + eps)


@pjit_inline
def optimizer_step(kind, theta, grad, state, hyper, n, chunks):
    """One update of the flat parameters from the flat gradient, iteration n (0-based),
    each of `chunks` threads taking a slice of the buffers.

    The learning rate is hyper[LR] * hyper[DECAY] ** (n // hyper[DECAY_EVERY]). The
    gradient is first scaled to global norm hyper[CLIP_NORM] if it is longer (when that
    is above 0; the norm's rounding depends on the split), then clipped element-wise to
    +-hyper[CLIP] (when above 0), then:
    adagrad  min-char-rnn's: m += g^2; theta -= lr g / sqrt(m + eps)
    rmsprop  char-rnn's: m = b2 m + (1 - b2) g^2; theta -= lr g / (sqrt(m) + eps)
    adam     m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2, bias-corrected
    sgd      theta -= lr g
    state: (2, P) optimizer memory.
    """
    lr = learning_rate(hyper, n)
    P = theta.size
    chunks = max(1, min(chunks, P // (SMALL // 16)))  # (a divide and a root per element)
    if chunks == 1:
        _update(kind, theta, grad, state[0], state[1], hyper, lr, norm_scale(grad, hyper), n)
        return
    scale = hyper[CLIP_NORM] - hyper[CLIP_NORM] + 1  # 1 in the model dtype
    if hyper[CLIP_NORM] > 0:
        sq = 0.0
        for ch in prange(chunks):
            i0, i1 = span(ch, chunks, P, 16)
            sq += _sum_squares(grad[i0:i1])
        norm = np.sqrt(sq)
        if norm > hyper[CLIP_NORM]:
            scale = hyper[CLIP_NORM] / norm
    for ch in prange(chunks):
        i0, i1 = span(ch, chunks, P, 16)
        _update(kind, theta[i0:i1], grad[i0:i1], state[0, i0:i1], state[1, i0:i1], hyper,
                lr, scale, n)


@jit
def learning_rate(hyper, n):
    """hyper[LR] decayed for iteration n."""
    lr = hyper[LR]
    if hyper[DECAY] != 1:
        lr = lr * hyper[DECAY] ** (n // int(hyper[DECAY_EVERY]))
    return lr


@jit
def norm_scale(grad, hyper):
    """The factor that brings the gradient down to global norm hyper[CLIP_NORM] (1 when
    it is shorter or clip_norm is off), summed in one pass as with one thread."""
    scale = hyper[CLIP_NORM] - hyper[CLIP_NORM] + 1  # 1 in the model dtype
    if hyper[CLIP_NORM] > 0:
        norm = np.sqrt(_sum_squares(grad))
        if norm > hyper[CLIP_NORM]:
            scale = hyper[CLIP_NORM] / norm
    return scale


@jit
def _sum_squares(g):
    s = 0.0
    for i in range(g.size):
        s += g[i] * g[i]
    return s


@jit
def _update(kind, theta, grad, m, v, hyper, lr, scale, n):
    """optimizer_step on one slice of the buffers."""
    clip, eps = hyper[CLIP], hyper[EPS]
    if scale != 1:
        for i in range(grad.size):
            grad[i] *= scale
    if kind == ADAGRAD and clip > 0:
        adagrad_update(theta, grad, m, lr, clip, eps)
        return
    if clip > 0:
        for i in range(grad.size):
            g = grad[i]
            if g > clip:
                grad[i] = clip
            elif g < -clip:
                grad[i] = -clip
    if kind == ADAGRAD:
        for i in range(theta.size):
            g = grad[i]
            m[i] += g * g
            theta[i] += -lr * g / np.sqrt(m[i] + eps)
    elif kind == RMSPROP:
        b2 = hyper[BETA2]
        for i in range(theta.size):
            g = grad[i]
            m[i] = b2 * m[i] + (1 - b2) * g * g
            theta[i] -= lr * g / (np.sqrt(m[i]) + eps)
    elif kind == ADAM:
        b1, b2 = hyper[BETA1], hyper[BETA2]
        c1 = 1 - b1 ** (n + 1)
        c2 = 1 - b2 ** (n + 1)
        for i in range(theta.size):
            g = grad[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            theta[i] -= lr * (m[i] / c1) / (np.sqrt(v[i] / c2) + eps)
    else:
        for i in range(theta.size):
            theta[i] -= lr * grad[i]


@jit
def next_uniform(rng):
    """A float in [0, 1) from a splitmix64 generator whose state is rng[0] (uint64)."""
    rng[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit
def dropout_masks(masks, rng, p):
    """masks (..., H): 0 with probability p, else 1 / (1 - p) (inverted dropout)."""
    flat = masks.reshape(-1)
    keep = 1.0 / (1.0 - p)
    for i in range(flat.size):
        flat[i] = keep if next_uniform(rng) >= p else 0.0
