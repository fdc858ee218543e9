"""The compiled entry points the trainer calls, for every family: training iterations,
the loss of a text (from a zero state or from given states), one window's gradients and
forward steps; the first two on one thread or on each thread of a team (kernels.team).
The family's own steps come from the registry its kernel file fills
(kernels.records.FAMILY_KERNELS).

Each is compiled for the types of its arguments: the family by its buffers' record
(kernels.records), the arithmetic by the path record, the dtype by the arrays', the
reading of the text (min-char-rnn's streams, or paragraphs) by the data's. So a
configuration compiles its own code and no other, and each entry point only when it is
first called.
"""
from numba import types
from numba.extending import overload

from .dropout import new_masks
from .jit import jit, returns_view
from .optim import bias_span, optimizer_step
from .output import add_loss, output_backward, output_forward
from .paragraphs import end_paragraphs, next_paragraphs, start_paragraphs
from .records import FAMILY_KERNELS, Paragraphs
from .windows import carry_states, end_window, read_window, start_window, window_of

def forward(P, buf, T, drop, path, team):
    """The family's forward steps 0..T-1 from buf.xs and the carried-in states."""


@overload(forward)
def _forward(P, buf, T, drop, path, team):
    f = FAMILY_KERNELS[buf.instance_class][0]
    return lambda P, buf, T, drop, path, team: f(P, buf, T, drop, path, team)


def backward(G, P, buf, T, drop, path, team):
    """The family's BPTT from dLoss/dh of the top layer in buf.dh."""


@overload(backward)
def _backward(G, P, buf, T, drop, path, team):
    f = FAMILY_KERNELS[buf.instance_class][1]
    return lambda G, P, buf, T, drop, path, team: f(G, P, buf, T, drop, path, team)


def cells(buf):
    """The cell states (an LSTM's cs), or the hidden states for families without."""


@returns_view(cells)
def _cells(buf):
    if "cs" in buf.fields:
        return lambda buf: buf.cs
    return lambda buf: buf.hs


def _paragraphs(data):
    """Whether the Numba type of the data, or of a Training's data, is a Paragraphs."""
    if isinstance(data, types.BaseNamedTuple) and "data" in data.fields:
        data = data.types[data.fields.index("data")]
    return isinstance(data, types.BaseNamedTuple) and data.instance_class is Paragraphs


def begin(buf, run, T, k, team):
    """Iteration k's window into buf.xs: min-char-rnn's at the data pointer, or the
    streams' paragraphs (kernels.paragraphs). Returns its steps: T, or fewer where the
    paragraphs end."""


@overload(begin)
def _begin(buf, run, T, k, team):
    if _paragraphs(run):
        return lambda buf, run, T, k, team: start_paragraphs(run.data, buf.xs, buf.hs,
                                                             cells(buf), T, True, k, team)

    def impl(buf, run, T, k, team):
        start_window(buf.xs, buf.hs, cells(buf), run.data, run.cursor, T, run.rng,
                     run.resets, team)
        return T
    return impl


def targets(buf, data):
    """The window's targets: buf.xs[1:], or the paragraphs' Masked ones."""


@returns_view(targets)
def _targets(buf, data):
    if _paragraphs(data):
        return lambda buf, data: data.targets
    return lambda buf, data: buf.xs[1:]


def finish(losses, k, sums, m, T, buf, run, team):
    """After an iteration of T steps: its loss per character in losses[k] (from the m
    items' sums), the states carried, the data pointer (or the paragraphs) moved on."""


@overload(finish)
def _finish(losses, k, sums, m, T, buf, run, team):
    if _paragraphs(run):
        return lambda losses, k, sums, m, T, buf, run, team: end_paragraphs(
            losses, k, sums, m, run.data, buf.hs, cells(buf), run.cursor, team)
    return lambda losses, k, sums, m, T, buf, run, team: end_window(
        losses, k, sums, m, T * buf.xs.shape[1], buf.hs, cells(buf), run.cursor, T, team)


@jit
def train(losses, net, run, buf, path, team):
    """len(losses) iterations of min-char-rnn's loop: the window at the data pointer (or
    of the paragraphs), forward, loss, BPTT, the optimizer step; losses (K,) out, the
    mean nats per character (per target) of each. run.cursor advances; buf.hs[:, 0]
    (and cs) carry the states; paragraphs need run.data.steps of len(losses) or more.
    Called with a Solo on one thread, or on each thread of a team with its Team
    (kernels.team.Call)."""
    L, T1, B, H = buf.hs.shape
    top = buf.hs[L - 1]
    for k in range(losses.size):
        T = begin(buf, run, T1 - 1, k, team)
        new_masks(buf.masks, run.rng, run.drop, team)
        forward(net.P, buf, T, run.drop, path, team)
        n = output_forward(buf.ys, top, T, targets(buf, run.data), 1.0 / B, net.P.Why,
                           net.P.by, buf.sums[0], path, team)
        output_backward(net.G.Why, net.G.by, buf.dh, buf.ys, top, T, net.P.Why, buf.part,
                        path, team)
        backward(net.G, net.P, buf, T, run.drop, path, team)
        optimizer_step(net, run.hyper, run.cursor[1], buf.sums[1], team,
                       bias_span(net.P))
        finish(losses, k, buf.sums[0], n, T, buf, run, team)


@jit
def loss_from(ids, P, buf, drop, path, team):
    """Summed loss in nats of predicting ids[:, 1:] from ids[:, :-1], the rows of ids
    (B, S) being B streams read from the states the caller left in buf.hs[:, 0] (and
    cs; zero for a zero state), in windows of the buffers' T steps with the states
    carried across windows; no dropout (drop: None, or 0.0 for a model trained with
    dropout, so that it runs the training's forward steps). The states after each
    row's last input (ids[:, -2]) are left there, for a next call to go on from; the
    total is also left in buf.sums[1, 0]. (One entry for every start, so validation
    compiles one.)"""
    L, T1, B, H = buf.hs.shape
    T = T1 - 1
    p = 0
    while p + 1 < ids.shape[1]:
        n = window_of(ids, p, T)
        read_window(buf.xs, ids, p, n, team)
        forward(P, buf, n, drop, path, team)
        m = output_forward(buf.ys, buf.hs[L - 1], n, buf.xs[1:], 1.0, P.Why, P.by,
                           buf.sums[0], path, team)
        add_loss(buf.sums[1], buf.sums[0], m, p == 0, team)
        carry_states(buf.hs, cells(buf), n, team)
        p += n
    return buf.sums[1, 0]


@jit
def paragraph_loss(pars, P, buf, drop, path, team):
    """Summed loss in nats of the paragraphs of pars (kernels.records.Paragraphs), each
    read from a zero state with its first character given (not scored), the buffers' B
    streams taking them in pars.order, in windows of up to the buffers' T steps with the
    states carried across windows; no dropout (drop: as loss_from's; pars.steps: room
    for every window and one more). The total is also left in buf.sums[1, 0]."""
    L, T1, B, H = buf.hs.shape
    start = True
    c = 0
    n = start_paragraphs(pars, buf.xs, buf.hs, cells(buf), T1 - 1, False, c, team)
    while n > 0:
        forward(P, buf, n, drop, path, team)
        m = output_forward(buf.ys, buf.hs[L - 1], n, pars.targets, 1.0, P.Why, P.by,
                           buf.sums[0], path, team)
        add_loss(buf.sums[1], buf.sums[0], m, start, team)
        start = False
        next_paragraphs(pars, buf.hs, cells(buf), team)
        c += 1
        n = start_paragraphs(pars, buf.xs, buf.hs, cells(buf), T1 - 1, False, c, team)
    return buf.sums[1, 0]


@jit
def gradients(net, buf, drop, path, team):
    """The loss (summed over steps, averaged over streams) and the gradients in net.G
    of the window in buf.xs from the states in buf, with the dropout masks now in
    buf.masks."""
    L, T1, B, H = buf.hs.shape
    T = T1 - 1
    top = buf.hs[L - 1]
    forward(net.P, buf, T, drop, path, team)
    n = output_forward(buf.ys, top, T, buf.xs[1:], 1.0 / B, net.P.Why, net.P.by,
                       buf.sums[0], path, team)
    output_backward(net.G.Why, net.G.by, buf.dh, buf.ys, top, T, net.P.Why, buf.part, path,
                    team)
    backward(net.G, net.P, buf, T, drop, path, team)
    return buf.sums[0, :n].sum() / B


@jit
def steps(P, buf, T, drop, path, team):
    """T forward steps from the ids in buf.xs and the states in buf.hs[:, 0] (and cs);
    no dropout (drop: as loss_from's)."""
    forward(P, buf, T, drop, path, team)
