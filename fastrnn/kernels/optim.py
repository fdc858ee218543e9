"""The optimizers, each one fused pass over the flat parameter buffer: global-norm
scaling, element-wise clipping and the update.

    adagrad  min-char-rnn's: m += g^2; theta -= lr g / sqrt(m + eps)
    rmsprop  char-rnn's: m = b2 m + (1 - b2) g^2; theta -= lr g / (sqrt(m) + eps)
    adam     m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2, bias-corrected
    sgd      theta -= lr g
"""
import numpy as np

from .jit import jit
from .team import after, close, first, items, span

# The optimizers by name, as config's optim.name says them, and their numbers in
# hyper[KIND].
OPTIMIZERS = {"adagrad": 0, "rmsprop": 1, "adam": 2, "sgd": 3}
ADAGRAD, RMSPROP, ADAM, SGD = (OPTIMIZERS[k] for k in ("adagrad", "rmsprop", "adam", "sgd"))
# hyper: the optimizer's settings in the model dtype, in this order.
LR, CLIP, CLIP_NORM, EPS, BETA1, BETA2, DECAY, DECAY_EVERY, KIND = range(9)
HYPER = 9
# Parameters per item of the update (a divide and a root per element).
UPDATE_ITEM = 4096


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


@jit
def optimizer_step(net, hyper, n, sums, team):
    """One update of the flat parameters net.theta from the flat gradient net.grad,
    iteration n (0-based), the threads taking slices of the buffers.

    The learning rate is hyper[LR] * hyper[DECAY] ** (n // hyper[DECAY_EVERY]). The
    gradient is first scaled to global norm hyper[CLIP_NORM] if it is longer (when that
    is above 0; each item's squares are summed into sums (W,), then the items' sums in
    order), then clipped element-wise to +-hyper[CLIP] (when above 0), then updated by
    the optimizer hyper[KIND] with net.memory (2, N).
    """
    theta, grad, state = net.theta, net.grad, net.memory
    kind = int(hyper[KIND])
    lr = learning_rate(hyper, n)
    P = theta.size
    m = items(team, P, P, UPDATE_ITEM)
    if m == 1:
        i = first(team, 1)
        if i >= 0:
            update(kind, theta, grad, state[0], state[1], hyper, lr, norm_scale(grad, hyper),
                   n)
            after(team, 1, i)
        close(team, 1)
        return
    scale = hyper[CLIP_NORM] - hyper[CLIP_NORM] + 1  # 1 in the model dtype
    if hyper[CLIP_NORM] > 0:
        i = first(team, m)
        while i >= 0:
            i0, i1 = span(i, m, P, 16)
            sums[i] = _sum_squares(grad[i0:i1])
            i = after(team, m, i)
        close(team, m)
        sq = 0.0
        for i in range(m):
            sq += sums[i]
        norm = np.sqrt(sq)
        if norm > hyper[CLIP_NORM]:
            scale = hyper[CLIP_NORM] / norm
    i = first(team, m)
    while i >= 0:
        i0, i1 = span(i, m, P, 16)
        update(kind, theta[i0:i1], grad[i0:i1], state[0, i0:i1], state[1, i0:i1], hyper,
               lr, scale, n)
        i = after(team, m, i)
    close(team, m)


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
def update(kind, theta, grad, m, v, hyper, lr, scale, n):
    """optimizer_step on one slice of the flat buffers (m, v: the memory's two rows)."""
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
