"""Windows of the text: min-char-rnn's data pointer over the training streams, and the
windows of a text read once for a loss."""
from .dropout import next_uniform
from .jit import jit
from .team import after, close, first


@jit
def next_window(xs, hs, cs, data, cursor, T, rng, resets):
    """min-char-rnn's data pointer: reset the carried state (hs[:, 0], and cs[:, 0] for
    an LSTM) and go back to the start when the window would run past the end of the
    streams, or at iteration 0; otherwise, with resets > 0, zero each stream's state
    with that chance (a draw from rng per stream). Copy the window into xs (T+1, B).
    Returns (p, n)."""
    p, n = cursor[0], cursor[1]
    B, S = data.shape
    if p + T + 1 >= S or n == 0:
        set_states(hs, cs, -1)  # reset RNN memory
        p = 0  # go from start of data
    elif resets > 0:
        for b in range(B):
            if next_uniform(rng) < resets:
                zero_stream(hs, cs, b)
    for t in range(T + 1):
        for b in range(B):
            xs[t, b] = data[b, p + t]
    return p, n


@jit
def zero_stream(hs, cs, b):
    """Stream b's carried state hs[:, 0, b] (and cs's) = 0."""
    L, _, B, H = hs.shape
    for l in range(L):
        for j in range(H):
            hs[l, 0, b, j] = 0
            cs[l, 0, b, j] = 0


@jit
def start_window(xs, hs, cs, data, cursor, T, rng, resets, team):
    """next_window as one item of the team; the window's start is left in cursor[0]."""
    i = first(team, 1)
    if i >= 0:
        p, _ = next_window(xs, hs, cs, data, cursor, T, rng, resets)
        cursor[0] = p
        after(team, 1, i)
    close(team, 1)


@jit
def end_window(losses, k, sums, n, chars, hs, cs, cursor, T, team):
    """After an iteration, as one item: its loss per character in losses[k] (the n items'
    summed losses in sums, over `chars` characters), the last states carried into the
    next window, and the data pointer and iteration advanced."""
    i = first(team, 1)
    if i >= 0:
        loss = 0.0
        for j in range(n):
            loss += sums[j]
        losses[k] = loss / chars
        set_states(hs, cs, T)  # carry the last state into the next iteration
        cursor[0] += T
        cursor[1] += 1
        after(team, 1, i)
    close(team, 1)


@jit
def window_of(ids, p, T):
    """How many steps the window of the streams ids (B, S) from position p takes: up to
    T, and the targets of the last."""
    return min(T, ids.shape[1] - 1 - p)


@jit
def read_window(xs, ids, p, n, team):
    """As one item: the n steps of the window of ids (B, S) from position p into xs."""
    i = first(team, 1)
    if i >= 0:
        for t in range(n + 1):
            for b in range(ids.shape[0]):
                xs[t, b] = ids[b, p + t]
        after(team, 1, i)
    close(team, 1)


@jit
def carry_states(hs, cs, n, team):
    """As one item: hs[:, 0] = hs[:, n], cs likewise (n 0: zero them). n is a variable
    at every call: a constant would compile another copy."""
    i = first(team, 1)
    if i >= 0:
        set_states(hs, cs, n if n > 0 else -1)
        after(team, 1, i)
    close(team, 1)


@jit
def set_states(hs, cs, src):
    """hs[:, 0] = hs[:, src] and cs likewise (cs may be hs), or zeros for src -1. (Loops:
    an array assignment compiles shape checks and their error messages.)"""
    L, _, B, H = hs.shape
    for l in range(L):
        for b in range(B):
            for j in range(H):
                hs[l, 0, b, j] = 0 if src < 0 else hs[l, src, b, j]
                cs[l, 0, b, j] = 0 if src < 0 else cs[l, src, b, j]
