"""The optimizers, each one fused pass over the flat parameter buffer: global-norm
scaling, element-wise clipping and the update.

    adagrad  min-char-rnn's: m += g^2; theta -= lr g / sqrt(m + eps)
    rmsprop  char-rnn's: m = b2 m + (1 - b2) g^2; theta -= lr g / (sqrt(m) + eps)
    adam     m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2, bias-corrected
    sgd      theta -= lr g

The learning rate follows a schedule (learning_rate), and decoupled weight decay (as
AdamW's, for every optimizer) shrinks the weight matrices, not the biases, in the same
pass: theta -= lr wd theta before the update.
"""
import numpy as np
from numba import types
from numba.extending import overload

from .jit import jit
from .records import whh_offset
from .team import after, close, first, items, span

# The optimizers by name, as config's optim.name says them, and their numbers in
# hyper[KIND].
OPTIMIZERS = {"adagrad": 0, "rmsprop": 1, "adam": 2, "sgd": 3}
ADAGRAD, RMSPROP, ADAM, SGD = (OPTIMIZERS[k] for k in ("adagrad", "rmsprop", "adam", "sgd"))
# The schedules by name, as config's optim.schedule says them, and their numbers in
# hyper[SCHEDULE] (step is 0: lr_decay every decay_every, constant when lr_decay is 1).
SCHEDULES = {"step": 0, "constant": 1, "cosine": 2, "plateau": 3}
STEP, CONSTANT, COSINE, PLATEAU = (SCHEDULES[k] for k in SCHEDULES)
# hyper: the optimizer's settings in the model dtype, in this order (made by settings(),
# read by the kernels at these places). LR_SCALE is the plateau schedule's multiplier,
# set by the trainer between calls; HORIZON the iteration at which the cosine reaches
# MIN_LR.
(LR, CLIP, CLIP_NORM, EPS, BETA1, BETA2, DECAY, DECAY_EVERY, KIND,
 SCHEDULE, WARMUP, MIN_LR, HORIZON, LR_SCALE, WEIGHT_DECAY) = range(15)
HYPER = 15
# Parameters per item of the update (a divide and a root per element).
UPDATE_ITEM = 4096


def settings(*, lr, clip=0.0, clip_norm=0.0, eps=1e-8, beta1=0.9, beta2=0.999,
             lr_decay=1.0, decay_every=1, optimizer="adagrad", schedule="step", warmup=0,
             min_lr=0.0, horizon=0, lr_scale=1.0, weight_decay=0.0, dtype=np.float64):
    """The hyper array (HYPER,) in dtype (the model's) of these settings, the one place
    that builds it: clip and clip_norm off at 0, the optimizer and schedule by name (keys
    of OPTIMIZERS and SCHEDULES), horizon the iteration at which the cosine schedule
    reaches min_lr, lr_scale the plateau schedule's multiplier."""
    hyper = np.zeros(HYPER, dtype)
    hyper[LR], hyper[CLIP], hyper[CLIP_NORM], hyper[EPS] = lr, clip, clip_norm, eps
    hyper[BETA1], hyper[BETA2] = beta1, beta2
    hyper[DECAY], hyper[DECAY_EVERY] = lr_decay, decay_every
    hyper[KIND], hyper[SCHEDULE] = OPTIMIZERS[optimizer], SCHEDULES[schedule]
    hyper[WARMUP], hyper[MIN_LR], hyper[HORIZON] = warmup, min_lr, horizon
    hyper[LR_SCALE], hyper[WEIGHT_DECAY] = lr_scale, weight_decay
    return hyper


@jit
def adagrad_update(theta, grad, mem, lr, clip, eps):
    """An Adagrad step over the flat buffers, each gradient first clipped to [-clip,
    clip] in the same pass when clip is above 0; min-char-rnn's arithmetic in its order.
    Pass lr, clip and eps as scalars of theta's dtype so that float32 stays float32."""
    for i in range(theta.size):
        g = grad[i]
        if clip > 0:
            g = clipped(g, clip)
            grad[i] = g
        mem[i] += g * g
        theta[i] += -lr * g / np.sqrt(mem[i] + eps)


@jit
def clipped(g, clip):
    """g clipped to [-clip, clip] (comparisons, not min/max, so that a NaN stays a
    NaN)."""
    if g > clip:
        return clip
    if g < -clip:
        return -clip
    return g


@jit
def optimizer_step(net, hyper, n, sums, team, biases):
    """One update of the flat parameters net.theta from the flat gradient net.grad,
    iteration n (0-based), the threads taking slices of the buffers.

    The learning rate is learning_rate(hyper, n). The gradient is first scaled to
    global norm hyper[CLIP_NORM] if it is longer (when that is above 0; each item's
    squares are summed into sums (W,), then the items' sums in order), then clipped
    element-wise to +-hyper[CLIP] (when above 0); with hyper[WEIGHT_DECAY] above 0 the
    weights, the elements outside the biases (b0, b1, c0: the flat buffer's [b0, b1)
    and [c0, N), see bias_span), shrink by lr * weight_decay; then the optimizer
    hyper[KIND] updates them with net.memory (2, N).
    """
    theta, grad, state = net.theta, net.grad, net.memory
    kind = int(hyper[KIND])
    lr = learning_rate(hyper, n)
    P = theta.size
    m = items(team, P, P, UPDATE_ITEM)
    scale = norm_scale(grad, hyper, sums, m, team)
    i = first(team, m)
    while i >= 0:
        i0, i1 = span(i, m, P, 16)
        decay_weights(theta, i0, i1, biases, lr * hyper[WEIGHT_DECAY])
        update(kind, theta[i0:i1], grad[i0:i1], state[0, i0:i1], state[1, i0:i1], hyper,
               lr, scale, n)
        i = after(team, m, i)
    close(team, m)


@jit
def learning_rate(hyper, n):
    """The learning rate of iteration n (0-based), in hyper's dtype.

    step: hyper[LR] * hyper[DECAY] ** (n // hyper[DECAY_EVERY]) (constant at DECAY 1);
    constant: hyper[LR]; cosine: nanoGPT's, a linear warm-up over WARMUP iterations,
    then a cosine from LR down to MIN_LR at iteration HORIZON, MIN_LR after; plateau:
    hyper[LR] * hyper[LR_SCALE]."""
    lr = hyper[LR]
    schedule = int(hyper[SCHEDULE])
    if schedule == COSINE:
        lr = like(cosine_lr(hyper[LR], hyper[MIN_LR], hyper[WARMUP], hyper[HORIZON], n),
                  lr)
    elif schedule == PLATEAU:
        lr = lr * hyper[LR_SCALE]
    elif schedule == STEP and hyper[DECAY] != 1:
        lr = lr * hyper[DECAY] ** (n // int(hyper[DECAY_EVERY]))
    return lr


@jit
def cosine_lr(lr, min_lr, warmup, horizon, n):
    """nanoGPT's get_lr in float64."""
    lr, min_lr, warmup, horizon = (np.float64(lr), np.float64(min_lr), np.float64(warmup),
                                   np.float64(horizon))
    if n < warmup:
        return lr * (n + 1) / (warmup + 1)
    if n >= horizon:
        return min_lr
    ratio = (n - warmup) / (horizon - warmup)
    return min_lr + 0.5 * (1.0 + np.cos(np.pi * ratio)) * (lr - min_lr)


def like(x, ref):
    """x as a scalar of ref's type (so that float32 stays float32)."""


@overload(like)
def _like(x, ref):
    if ref == types.float32:
        return lambda x, ref: np.float32(x)
    return lambda x, ref: np.float64(x)


@jit
def bias_span(P):
    """(b0, b1, c0): the biases' places in the flat buffer of Params P, [b0, b1) for
    bxh and bhh, [c0, N) for by; the rest are weight matrices."""
    b0 = whh_offset(P) + P.Whh.size
    return b0, b0 + P.bxh.size + P.bhh.size, b0 + P.bxh.size + P.bhh.size + P.Why.size


@jit
def decay_weights(theta, i0, i1, biases, rate):
    """theta[i] -= rate * theta[i] for the weights among elements i0..i1-1 of the flat
    buffer (rate 0: nothing)."""
    if rate == 0:
        return
    b0, b1, c0 = biases
    for lo, hi in ((max(i0, 0), min(i1, b0)), (max(i0, b1), min(i1, c0))):
        for i in range(lo, hi):
            theta[i] -= rate * theta[i]


@jit
def norm_scale(grad, hyper, sums, m, team):
    """The factor that brings the gradient down to global norm hyper[CLIP_NORM] (1 when
    it is shorter or clip_norm is off): the squares of each of m items (slices of grad)
    summed into sums (W,), then the items' sums added in order, so the result depends
    on m and never on which thread took an item."""
    scale = hyper[CLIP_NORM] - hyper[CLIP_NORM] + 1  # 1 in the model dtype
    if hyper[CLIP_NORM] > 0:
        i = first(team, m)
        while i >= 0:
            i0, i1 = span(i, m, grad.size, 16)
            sums[i] = _sum_squares(grad[i0:i1])
            i = after(team, m, i)
        close(team, m)
        sq = 0.0
        for i in range(m):
            sq += sums[i]
        norm = np.sqrt(sq)
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
def update(kind, theta, grad, m, v, hyper, lr, scale, n):
    """optimizer_step on one slice of the flat buffers (m, v: the memory's two rows)."""
    clip, eps = hyper[CLIP], hyper[EPS]
    if scale != 1:
        for i in range(grad.size):
            grad[i] *= scale
    if kind == ADAGRAD:
        adagrad_update(theta, grad, m, lr, clip, eps)
        return
    if clip > 0:
        for i in range(grad.size):
            grad[i] = clipped(grad[i], clip)
    if kind == RMSPROP:
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
