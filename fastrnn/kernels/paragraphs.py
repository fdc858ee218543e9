"""Windows of paragraphs (data.records: paragraphs), in the manner of minii-ai/rnn's
train.py: each paragraph is its own sequence, read from a zero state (h, and c for an
LSTM) in windows of up to T steps that never cross its end, and training reads the
paragraphs in an order shuffled every pass.

Each of the B streams reads one paragraph at a time and takes the next one of the order
when its own has ended; a pass ends when the order runs out, and training then shuffles
it again (Fisher-Yates, from a splitmix64 generator whose state is an array, saved in
checkpoints). A window takes as many steps as the stream with the most left needs (at
most T): the other streams' targets past their paragraphs' ends are -1, which the output
layer leaves out of the loss and the gradient (kernels.output), and their inputs there
repeat the last character, so no input is ever out of the vocabulary. The states after
a padded step are never used: that stream starts its next paragraph from zeros.

The records are kernels.records.Paragraphs and Masked.
"""
from .dropout import next_uniform
from .jit import jit
from .team import after, close, first
from .windows import set_states

NEXT, STEPS, TARGETS = range(3)  # the slots of Paragraphs.window


@jit
def shuffle(order, rng):
    """order (P,) becomes 0..P-1 in a random order (Fisher-Yates) drawn from the
    splitmix64 state rng (1,)."""
    for i in range(order.size):
        order[i] = i
    for i in range(order.size - 1, 0, -1):
        j = min(int(next_uniform(rng) * (i + 1)), i)  # (the product can round up to i + 1)
        order[i], order[j] = order[j], order[i]


@jit
def _left(pars, b):
    """The targets left in stream b's paragraph (0 for a stream without one)."""
    p = pars.at[b, 0]
    if p < 0:
        return 0
    return pars.starts[p + 1] - pars.starts[p] - 1 - pars.at[b, 1]


@jit
def next_windows(pars, xs, hs, cs, T, again):
    """The next window of every stream into xs (T+1, B) and pars.targets: a stream whose
    paragraph has ended takes the next one of the order, from a zero state in hs[:, 0]
    (and cs); when the order has run out it is shuffled again if `again` (training),
    and otherwise the stream stays idle (a loss's last windows). Sets pars.window's
    steps (0 once every paragraph has been read) and targets."""
    at, w = pars.at, pars.window
    B = at.shape[0]
    P = pars.order.size
    L, _, _, H = hs.shape
    n = 0
    for b in range(B):
        if _left(pars, b) == 0:
            if w[NEXT] == P and again:
                shuffle(pars.order, pars.rng)
                w[NEXT] = 0
            at[b, 0], at[b, 1] = -1, 0
            if w[NEXT] < P:
                at[b, 0] = pars.order[w[NEXT]]
                w[NEXT] += 1
            for l in range(L):
                for j in range(H):
                    hs[l, 0, b, j] = 0
                    cs[l, 0, b, j] = 0
        n = max(n, min(T, _left(pars, b)))
    count = 0
    tg = pars.targets.ids
    for b in range(B):
        r = min(n, _left(pars, b))
        count += r
        s = pars.starts[at[b, 0]] + at[b, 1] if at[b, 0] >= 0 else 0
        for t in range(n + 1):
            # an idle stream reads character 0 (any character would do)
            xs[t, b] = pars.ids[s + min(t, r)] if at[b, 0] >= 0 else 0
        for t in range(n):
            tg[t, b] = pars.ids[s + t + 1] if t < r else -1
    w[STEPS] = n
    w[TARGETS] = count


@jit
def start_paragraphs(pars, xs, hs, cs, T, again, c, team):
    """next_windows, window c of the call, as one item of the team; returns its steps.

    They are read from pars.steps[c], not from pars.window: a team's thread that has
    finished an item leaves the phase without waiting for the others to leave it
    (kernels.team), so it may take the next window's item, and rewrite pars.window,
    before a slower thread has read this window's steps."""
    i = first(team, 1)
    if i >= 0:
        next_windows(pars, xs, hs, cs, T, again)
        pars.steps[c] = pars.window[STEPS]
        after(team, 1, i)
    close(team, 1)
    return pars.steps[c]


@jit
def advance(pars, hs, cs):
    """After a window of n steps: each stream's place moved on by its steps, and the last
    states carried into the next window (those of a stream whose paragraph has ended
    are replaced by zeros when it takes the next)."""
    n = pars.window[STEPS]
    for b in range(pars.at.shape[0]):
        pars.at[b, 1] += min(n, _left(pars, b))
    set_states(hs, cs, n)


@jit
def end_paragraphs(losses, k, sums, m, pars, hs, cs, cursor, team):
    """After an iteration, as one item: its loss per target in losses[k] (the m items'
    summed losses in sums), the places and states moved on, the iteration counted."""
    i = first(team, 1)
    if i >= 0:
        loss = 0.0
        for j in range(m):
            loss += sums[j]
        losses[k] = loss / pars.window[TARGETS]
        advance(pars, hs, cs)
        cursor[1] += 1
        after(team, 1, i)
    close(team, 1)


@jit
def next_paragraphs(pars, hs, cs, team):
    """advance as one item."""
    i = first(team, 1)
    if i >= 0:
        advance(pars, hs, cs)
        after(team, 1, i)
    close(team, 1)
