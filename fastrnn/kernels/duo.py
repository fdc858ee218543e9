"""min-char-rnn's iteration on two threads, to the bit: one thread runs the recurrence
(the forward steps, then BPTT) while the other runs the output layer beside it.

Only the recurrence is sequential: the logits, softmax and Why^T dy of step t need only
h[t+1], and the weight gradients only the finished passes. Splitting each step's small
products between threads costs more than it saves (a parallel region starts in about a
microsecond, as long as a hidden-100 gemv), so instead two threads, started once for a
whole chunk of iterations, hand each iteration's units of work to each other through
atomic flags (kernels.sync):

    F   min-char-rnn's data pointer, then the forward steps
        h[t+1] = tanh(Wxh x[t] + Whh h[t] + bh), each step published as it is done
    O   each published step: logits, softmax, loss, dh[t] = Why^T dy[t]      (needs F)
    R   BPTT through tanh and Whh, last step first                          (needs O)
    Y   dWhy, dby                                                           (needs O)
    E   dbh, dWxh                                                           (needs R)
    Wj  dWhh, the j-th of BLOCKS blocks of rows                             (needs R)
        (from hidden 256 on: the j-th block of steps, the last first, each as BPTT
        publishes it and after W(j-1), since the sums run over reversed time)
    N   with clip_norm, the global-norm scale                     (needs every gradient)
    Q   the optimizer step of Why and by, while BPTT runs                    (needs Y)
    PE  the optimizer step of Wxh and bh                                     (needs E)
    Pj  the optimizer step of block j of Whh                 (needs Wj; every Wj from 256)
(with clip_norm, Q, PE and Pj need N instead). Thread 0 takes F, R, E, PE and the Pj,
the units that touch Wxh, Whh and bh, which its passes read; thread 1 takes O, Y, Q and
the Wj, and whichever finishes first takes on what the other has not started. A unit
goes to whichever thread claims it first (compare-and-exchange), and a thread that
needs a unit nobody has claimed runs it itself, so the chunk completes even when the
threads run one after the other; a thread only ever waits for a unit that the other is
running. Each thread sees every unit of an iteration done before it starts the next.
Every unit does the one-thread exact kernel's arithmetic (kernels.rnn on the Exact path)
in its order, so the bits are the same.
"""
import numpy as np
from numba import prange

from .dot import gemv_cols, gemv_rows
from .inputs import embedding_columns
from .jit import jit, pjit
from .optim import CLIP_NORM, KIND, learning_rate, norm_scale, update
from .output import softmax_xent
from .products import row_sum_rev_slice
from .records import Net, whh_offset
from .rnn import _rnn_cells, _rnn_cells_back
from .simd import outer_sum_exact, outer_sum_exact_more
from .sync import compare_exchange, cpu_relax, load_acquire, store_release, wait_until_above
from .team import LINE, Solo, span
from .windows import next_window, set_states

BLOCKS = 4  # of dWhh's rows, so that its sums and their optimizer steps overlap
F, O, R, Y, E = range(5)  # units, in an order where each needs only earlier ones
DWHH = E + 1  # DWHH + j: Wj
N = DWHH + BLOCKS
Q, PE = N + 1, N + 2
UPHH = N + 3  # UPHH + j: Pj
UNITS = UPHH + BLOCKS
# `flags` holds a flag per unit, then STEPS, where F publishes how many steps it has
# finished (over all iterations), SCALE, N's result as the bits of a float64, and BACK,
# where R publishes how many steps it has finished (over all iterations); each
# on a cache line of its own (LINE int64s), so that a flag one thread writes does not
# move the others away from the thread that reads them.
STEPS, SCALE, BACK = UNITS * LINE, (UNITS + 1) * LINE, (UNITS + 2) * LINE
FLAGS = (UNITS + 3) * LINE
# A unit's flag in iteration k of a chunk: 2k free, 2k+1 claimed, 2k+2 done (and so
# free in iteration k+1).
# Spins (of tens of nanoseconds) that O waits for the other thread to claim F (and a
# block of steps of dWhh for R) before it runs F (R) itself: the threads start within
# a microsecond of each other, and a thread that has not started by then may not start
# until this one has finished (a pool that runs both halves of the region on one
# thread).
PATIENCE = 20000
# From this hidden size on, thread 1 would wait through most of BPTT, so the dWhh sums
# follow BPTT a block of steps at a time instead of waiting for it (measured at 512).
FOLLOW_BPTT = 256
# each thread's own units first, then all (done already unless the other never started)
_ALL = list(range(UNITS))
# (thread 0 goes for the last block of dWhh first: thread 1 sums them in order, so
# that one is the likeliest to be free)
_THREAD_UNITS = (np.array([F, R, E, N, PE, UPHH + BLOCKS - 1]
                          + [UPHH + j for j in range(BLOCKS - 1)] + _ALL),
                 np.array([O, Y, Q] + [DWHH + j for j in range(BLOCKS)] + _ALL))


@pjit
def rnn_train_duo(losses, P, G, theta, grad, memory, run, buf, team):
    """kernels.entries' train for the rnn of one layer, one stream and the Exact path,
    on two threads of one parallel region; team is ignored (a Solo). This is the one
    kernel that still runs on Numba's own threads: with a team of Python threads
    (kernels.team.Call) it ran 15-20% slower (measured: 181 against 212 us per
    iteration at hidden 100), for reasons not yet found. It takes the fields of the Net
    record: Numba hands a region's records to its threads one level deep."""
    T = buf.hs.shape[1] - 1
    buf.duo[:] = 0
    for thread in prange(2):
        net = Net(P, G, theta, grad, memory)
        units = _THREAD_UNITS[0] if thread == 0 else _THREAD_UNITS[1]
        for k in range(losses.size):
            for u in units:
                _ensure(u, k, losses, net, run, buf)
    buf.hs[:, 0] = buf.hs[:, T]  # carry the last state into the next call


@jit
def rnn_train_duo_half(losses, net, run, buf, thread):
    """One of rnn_train_duo's two threads' work, for a test that runs them in turn on
    one thread (the call must complete all the same)."""
    units = _THREAD_UNITS[0] if thread == 0 else _THREAD_UNITS[1]
    for k in range(losses.size):
        for u in units:
            _ensure(u, k, losses, net, run, buf)


@jit
def _ensure(u, k, losses, net, run, buf):
    """Return once unit u of iteration k is done (or, for O, has been run here), running
    it and what it needs here when no thread has claimed them, waiting for them
    otherwise."""
    flags = buf.duo
    norm = run.hyper[CLIP_NORM] > 0
    follow = buf.dh.shape[2] >= FOLLOW_BPTT
    for d in range(u):
        if _needs(u, d, norm, follow):
            _settle(d, k, losses, net, run, buf)
    # O reads what F publishes, and with `follow` the Wj what R publishes: give the
    # other thread time to claim that unit, then run it here if nobody has
    lead = F if u == O else (R if follow and DWHH <= u < N else -1)
    if lead >= 0:
        spins = 0
        while load_acquire(flags, lead * LINE) == 2 * k and spins < PATIENCE:
            cpu_relax()
            spins += 1
        if compare_exchange(flags, lead * LINE, 2 * k, 2 * k + 1):
            _run(lead, k, losses, net, run, buf)
            store_release(flags, lead * LINE, 2 * k + 2)
    _settle(u, k, losses, net, run, buf)


@jit
def _needs(u, d, norm, follow):
    """Whether unit u needs unit d (< u) of the same iteration done first: its
    dependencies, closed over; norm: whether clip_norm is on; follow: whether the Wj
    follow BPTT (then they need R only to have started, which _ensure sees to)."""
    if u <= O:
        return False
    if u <= Y:
        return d <= O
    if u == E:
        return d <= R
    if u < N:  # Wj
        return d <= (O if follow else R) or (follow and DWHH <= d)
    if norm:  # N needs every gradient, the optimizer steps need N
        return d < N or (u > N and d == N)
    if u == Q:
        return d <= O or d == Y
    if u == PE:
        return d <= R or d == E
    if u >= UPHH:
        return d <= R or d == DWHH + u - UPHH or (follow and DWHH <= d < N)
    return False  # N, which is a no-op without clip_norm


@jit
def _settle(u, k, losses, net, run, buf):
    """Run unit u of iteration k if it is free, or wait until the thread running it is
    done; its dependencies are done already."""
    flags = buf.duo
    if compare_exchange(flags, u * LINE, 2 * k, 2 * k + 1):
        _run(u, k, losses, net, run, buf)
        store_release(flags, u * LINE, 2 * k + 2)
        return
    while load_acquire(flags, u * LINE) < 2 * k + 2:
        cpu_relax()


@jit
def _run(u, k, losses, net, run, buf):
    """The work of unit u in iteration k (see the module's docstring)."""
    P, G, theta, grad, state = net
    Wemb, Whh, bh, Why, by = P.Wemb, P.Whh, P.bxh, P.Why, P.by
    dWhh = G.Whh
    hs, tmp, ys, dh, dnext, xs, flags = buf.hs, buf.tmp, buf.ys, buf.dh, buf.dnext, buf.xs, buf.duo
    cursor, hyper = run.cursor, run.hyper
    kind = int(hyper[KIND])
    h = hs[0]  # (T+1, 1, H)
    T, H, V = dh.shape[0], dh.shape[2], ys.shape[2]
    # (loops and gemv_rows/gemv_cols, not array assignments and np.dot: no shape checks
    # and error messages to compile, and np.dot with out does not compile without
    # reference counts, kernels.dot)
    W0 = Whh[0]
    if u == F:
        if k > 0:
            set_states(hs, hs, T)  # carry the last state into this iteration
        p, n = next_window(xs, hs, hs, run.data, cursor, T, run.rng, run.resets)
        cursor[0] = p + T
        cursor[1] = n + 1
        for t in range(T):
            row, e = h[t + 1, 0], Wemb[xs[t, 0]]  # the one-hot product
            for j in range(H):
                row[j] = e[j]
            gemv_rows(tmp, 0, W0, 0, H, h[t], 0)  # np.dot(Whh[0], h[t, 0], tmp[0])
            _rnn_cells(h, tmp, bh[0], t, 0, 1)
            store_release(flags, STEPS, k * T + t + 1)
    elif u == O:
        loss = 0.0
        for t in range(T):
            wait_until_above(flags, STEPS, k * T + t)
            y = ys[t, 0]
            gemv_rows(ys[t], 0, Why, 0, V, h[t + 1], 0)  # np.dot(Why, h[t + 1, 0], y)
            for v in range(V):
                y[v] += by[v]
            loss += softmax_xent(y, xs[t + 1, 0], 1.0)
            gemv_cols(dh[t], 0, Why, 0, V, ys[t], 0)  # np.dot(Why.T, y, dh[t, 0])
        losses[k] = loss / T
    elif u == R:
        dnext[:] = 0
        for t in range(T - 1, -1, -1):
            _rnn_cells_back(dh, dnext, h, t, 0, 1)
            gemv_cols(dnext, 0, W0, 0, H, dh[t], 0)  # np.dot(Whh[0].T, dh[t, 0], dnext)
            store_release(flags, BACK, k * T + T - t)
    elif u == Y:
        dy = ys.reshape(-1, V)
        outer_sum_exact(G.Why, dy, h.reshape(-1, H)[1:])
        row_sum_rev_slice(G.by, dy)
    elif u == E:
        embedding_columns(G.Wemb, G.bxh[0], dh, xs, T, 0, H)
    elif u == N:
        # (one item, as optimizer_step takes it on one thread; buf.sums is not the
        # duo's otherwise)
        flags[SCALE:SCALE + 1].view(np.float64)[0] = norm_scale(grad, hyper, buf.sums[1],
                                                                1, Solo())
    elif u >= DWHH and u < N:
        draw, hprev = dh.reshape(-1, H), h.reshape(-1, H)[:T]
        j = u - DWHH
        if H < FOLLOW_BPTT:
            m0, m1 = span(j, BLOCKS, H, 4)  # (the exact sum's row tiles are four rows)
            outer_sum_exact(dWhh[0, m0:m1], draw[:, m0:m1], hprev)
        else:  # steps t0..t1-1, once BPTT has been through them
            t0, t1 = span(BLOCKS - 1 - j, BLOCKS, T, 1)
            wait_until_above(flags, BACK, k * T + T - t0 - 1)
            if j == 0:
                outer_sum_exact(dWhh[0], draw[t0:t1], hprev[t0:t1])
            else:
                outer_sum_exact_more(dWhh[0], draw[t0:t1], hprev[t0:t1])
    else:
        n = cursor[1] - 1
        lr = learning_rate(hyper, n)
        scale = 1.0
        if hyper[CLIP_NORM] > 0:
            scale = flags[SCALE:SCALE + 1].view(np.float64)[0]
        # the flat buffers in Params' order: Wemb, Whh, bh, Why, by (Wxh and bhh are
        # empty with one layer of the rnn)
        whh = whh_offset(P)
        if u == Q:
            _update_slice(kind, theta, grad, state, hyper, lr, scale, n,
                          theta.size - Why.size - by.size, theta.size)
        elif u == PE:
            _update_slice(kind, theta, grad, state, hyper, lr, scale, n, 0, whh)
            _update_slice(kind, theta, grad, state, hyper, lr, scale, n, whh + Whh.size,
                          whh + Whh.size + bh.size)
        else:
            m0, m1 = span(u - UPHH, BLOCKS, H, 4)
            _update_slice(kind, theta, grad, state, hyper, lr, scale, n, whh + m0 * H,
                          whh + m1 * H)


@jit
def _update_slice(kind, theta, grad, state, hyper, lr, scale, n, i0, i1):
    """The optimizer step of elements i0..i1-1 of the flat buffers."""
    update(kind, theta[i0:i1], grad[i0:i1], state[0, i0:i1], state[1, i0:i1], hyper, lr,
           scale, n)
