"""The yardstick: min-char-rnn, ported to Python 3 and kept as plain numpy.

This is Karpathy's min-char-rnn with three changes only: Python 3, the vocabulary is
``sorted(set(text))`` (the original's ``list(set(...))`` order is arbitrary), and the
parameters, text and random generator are passed in instead of being globals. Tests
compare fastrnn's kernels with it and the benchmark times it; nothing else uses it.

It is derived from min-char-rnn (https://gist.github.com/karpathy/d4dee566867f8291f086),
which carries this notice, kept here:

    Minimal character-level Vanilla RNN model. Written by Andrej Karpathy (@karpathy)
    BSD License
"""
import numpy as np

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def init_params(vocab_size, hidden_size, rng=np.random):
    """min-char-rnn's initialisation: weights randn * 0.01 in this order, biases zero."""
    Wxh = rng.randn(hidden_size, vocab_size) * 0.01  # input to hidden
    Whh = rng.randn(hidden_size, hidden_size) * 0.01  # hidden to hidden
    Why = rng.randn(vocab_size, hidden_size) * 0.01  # hidden to output
    bh = np.zeros((hidden_size, 1))  # hidden bias
    by = np.zeros((vocab_size, 1))  # output bias
    return dict(Wxh=Wxh, Whh=Whh, Why=Why, bh=bh, by=by)


def loss_fun(inputs, targets, hprev, params, clip=5.0):
    """inputs, targets are both lists of integers; hprev is an (H, 1) array of the initial
    hidden state. Returns the loss (summed over steps), gradients on model parameters
    (clipped to +-clip), and the last hidden state."""
    Wxh, Whh, Why, bh, by = (params[k] for k in PARAM_NAMES)
    vocab_size = Why.shape[0]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    # forward pass
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))  # encode in 1-of-k representation
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)  # hidden state
        ys[t] = np.dot(Why, hs[t]) + by  # unnormalized log probabilities for next chars
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))  # probabilities for next chars
        loss += -np.log(ps[t][targets[t], 0])  # softmax (cross-entropy loss)
    # backward pass: compute gradients going backwards
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # backprop into y
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext  # backprop into h
        dhraw = (1 - hs[t] * hs[t]) * dh  # backprop through tanh nonlinearity
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    grads = dict(Wxh=dWxh, Whh=dWhh, Why=dWhy, bh=dbh, by=dby)
    for dparam in grads.values():
        np.clip(dparam, -clip, clip, out=dparam)  # clip to mitigate exploding gradients
    return loss, grads, hs[len(inputs) - 1]


def sample(h, seed_ix, n, params, rng=np.random):
    """Sample a sequence of n integers from the model; h is the memory state, seed_ix the
    seed letter for the first time step."""
    Wxh, Whh, Why, bh, by = (params[k] for k in PARAM_NAMES)
    vocab_size = Why.shape[0]
    x = np.zeros((vocab_size, 1))
    x[seed_ix] = 1
    ixes = []
    for _ in range(n):
        h = np.tanh(np.dot(Wxh, x) + np.dot(Whh, h) + bh)
        y = np.dot(Why, h) + by
        p = np.exp(y) / np.sum(np.exp(y))
        ix = rng.choice(range(vocab_size), p=p.ravel())
        x = np.zeros((vocab_size, 1))
        x[ix] = 1
        ixes.append(ix)
    return ixes


class MinCharRNN:
    """min-char-rnn's training loop, one iteration per ``step()``.

    ``losses`` collects each iteration's loss (summed over the seq_length steps) and
    ``smooth_loss`` follows the original's 0.999 running average.
    """

    def __init__(self, text, hidden_size=100, seq_length=25, learning_rate=1e-1,
                 clip=5.0, params=None, seed=None):
        self.chars = sorted(set(text))
        self.char_to_ix = {ch: i for i, ch in enumerate(self.chars)}
        self.data = text
        self.seq_length, self.learning_rate, self.clip = seq_length, learning_rate, clip
        vocab_size = len(self.chars)
        if params is None:
            params = init_params(vocab_size, hidden_size, np.random.RandomState(seed))
        self.params = {k: np.array(params[k], dtype=np.float64) for k in PARAM_NAMES}
        self.mem = {k: np.zeros_like(v) for k, v in self.params.items()}  # Adagrad memory
        self.hprev = np.zeros((self.params["Whh"].shape[0], 1))
        self.n, self.p = 0, 0
        self.smooth_loss = -np.log(1.0 / vocab_size) * seq_length  # loss at iteration 0
        self.losses = []

    def step(self):
        data, seq_length = self.data, self.seq_length
        # prepare inputs (we're sweeping from left to right in steps seq_length long)
        if self.p + seq_length + 1 >= len(data) or self.n == 0:
            self.hprev = np.zeros_like(self.hprev)  # reset RNN memory
            self.p = 0  # go from start of data
        p = self.p
        inputs = [self.char_to_ix[ch] for ch in data[p:p + seq_length]]
        targets = [self.char_to_ix[ch] for ch in data[p + 1:p + seq_length + 1]]
        loss, grads, self.hprev = loss_fun(inputs, targets, self.hprev, self.params, self.clip)
        self.smooth_loss = self.smooth_loss * 0.999 + loss * 0.001
        # perform parameter update with Adagrad
        for k in PARAM_NAMES:
            param, dparam, mem = self.params[k], grads[k], self.mem[k]
            mem += dparam * dparam
            param += -self.learning_rate * dparam / np.sqrt(mem + 1e-8)  # adagrad update
        self.p += seq_length  # move data pointer
        self.n += 1  # iteration counter
        self.losses.append(loss)
        return loss

    def train(self, n_iters):
        return np.array([self.step() for _ in range(n_iters)])


# --- Every family, for the tests and the family benchmarks -------------------------------
# Plain numpy, one step at a time, over B streams and L layers, from a zero state, no
# dropout. params use the public names of fastrnn's Trainer.params(): for rnn Wxh.l,
# Whh.l, bh.l; for gru/lstm Wxh.l (G*H, in), Whh.l (G*H, H), bxh.l, bhh.l with gate rows
# in PyTorch's order (gru: r, z, n; lstm: i, f, g, o); then Why (V, H), by (V,).


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def model_loss_grads(kind, params, xs):
    """Loss (summed over the T steps, averaged over the B streams) of predicting
    xs[1:] from xs[:-1] (xs: (T+1, B) ids) and its gradients by parameter name."""
    loss, grads, _ = window_loss_grads(kind, params, xs, xs[1:])
    return loss, grads


def window_loss_grads(kind, params, xs, targets, states=None):
    """model_loss_grads of predicting targets (T, B) from xs[:-1], a target of -1 counting
    for nothing (no loss, no gradient), from states (S, L, B, H): h, and c for an LSTM
    (zeros if None); also returns the states after the last step, in that shape."""
    L = sum(1 for k in params if k.startswith("Whh."))
    H = params["Whh.0"].shape[1]
    V = params["Why"].shape[0]
    T, B = xs.shape[0] - 1, xs.shape[1]
    if states is None:
        states = np.zeros((2 if kind == "lstm" else 1, L, B, H))
    eye = np.eye(V)
    inputs = [eye[xs[t]] for t in range(T)]  # one-hot (B, V) per step
    caches = []
    last = np.zeros_like(states)
    for l in range(L):  # forward, layer by layer
        h = states[0, l]
        c = states[-1, l]
        outs, cache = [], []
        for t in range(T):
            x = inputs[t]
            if kind == "rnn":
                hn = np.tanh(x @ params[f"Wxh.{l}"].T + h @ params[f"Whh.{l}"].T
                             + params[f"bh.{l}"])
                cache.append((x, h, hn))
            else:
                ax = x @ params[f"Wxh.{l}"].T + params[f"bxh.{l}"]
                ah = h @ params[f"Whh.{l}"].T + params[f"bhh.{l}"]
                if kind == "gru":
                    r = _sigmoid(ax[:, :H] + ah[:, :H])
                    z = _sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
                    n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
                    hn = (1 - z) * n + z * h
                    cache.append((x, h, r, z, n, ah[:, 2 * H:]))
                else:
                    a = ax + ah
                    i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
                    g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
                    cn = f * c + i * g
                    hn = o * np.tanh(cn)
                    cache.append((x, h, c, i, f, g, o, cn))
                    c = cn
            h = hn
            outs.append(h)
        last[0, l] = h
        if kind == "lstm":
            last[1, l] = c
        caches.append(cache)
        inputs = outs
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    loss = 0.0
    dtop = []
    for t in range(T):  # output layer
        y = inputs[t] @ params["Why"].T + params["by"]
        p = np.exp(y - y.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        real = targets[t] >= 0
        tgt = np.where(real, targets[t], 0)
        loss -= np.log(p[np.arange(B), tgt])[real].sum() / B
        dy = (p - eye[tgt]) * real[:, None] / B
        grads["Why"] += dy.T @ inputs[t]
        grads["by"] += dy.sum(axis=0)
        dtop.append(dy @ params["Why"])
    dhs = dtop
    for l in reversed(range(L)):  # backward through time, layer by layer
        dnext = np.zeros((B, H))
        dcnext = np.zeros((B, H))
        dxs = [None] * T
        for t in reversed(range(T)):
            d = dhs[t] + dnext
            if kind == "rnn":
                x, h, hn = caches[l][t]
                draw = (1 - hn * hn) * d
                grads[f"Wxh.{l}"] += draw.T @ x
                grads[f"Whh.{l}"] += draw.T @ h
                grads[f"bh.{l}"] += draw.sum(axis=0)
                dnext = draw @ params[f"Whh.{l}"]
                dxs[t] = draw @ params[f"Wxh.{l}"]
                continue
            if kind == "gru":
                x, h, r, z, n, hh = caches[l][t]
                dn = d * (1 - z) * (1 - n * n)
                dz = d * (h - n) * z * (1 - z)
                dr = dn * hh * r * (1 - r)
                dax = np.concatenate([dr, dz, dn], axis=1)
                dah = np.concatenate([dr, dz, dn * r], axis=1)
                dprev = d * z
            else:
                x, h, c, i, f, g, o, cn = caches[l][t]
                tc = np.tanh(cn)
                dc = dcnext + d * o * (1 - tc * tc)
                dax = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f),
                                      dc * i * (1 - g * g), d * tc * o * (1 - o)], axis=1)
                dah = dax
                dcnext = dc * f
                dprev = 0
            grads[f"Wxh.{l}"] += dax.T @ x
            grads[f"Whh.{l}"] += dah.T @ h
            grads[f"bxh.{l}"] += dax.sum(axis=0)
            grads[f"bhh.{l}"] += dah.sum(axis=0)
            dnext = dprev + dah @ params[f"Whh.{l}"]
            dxs[t] = dax @ params[f"Wxh.{l}"]
        dhs = dxs
    return loss, grads, last


# --- Paragraphs (data.records: paragraphs), in the manner of minii-ai/rnn ---------------
# Each paragraph is its own sequence, read from a zero state in windows of up to T steps
# that stay within it; B streams each take the next paragraph of an order shuffled every
# pass when their own ends. fastrnn.kernels.paragraphs does this in compiled code.


def splitmix64(state):
    """(the next state, a float in [0, 1)) of the splitmix64 generator at state."""
    state = (state + 0x9E3779B97F4A7C15) % 2**64
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    z ^= z >> 31
    return state, (z >> 11) * (1.0 / 2**53)


def shuffled(P, state):
    """(range(P) in the order Fisher-Yates draws from splitmix64 at state, the next
    state)."""
    order = list(range(P))
    for i in range(P - 1, 0, -1):
        state, u = splitmix64(state)
        j = min(int(u * (i + 1)), i)
        order[i], order[j] = order[j], order[i]
    return order, state


class ParagraphStreams:
    """The windows of B streams over paragraphs (lists of ids, each ending in its blank
    line), the order shuffled from the splitmix64 state at the start of every pass."""

    def __init__(self, paragraphs, B, T, state):
        self.paragraphs, self.T, self.state = paragraphs, T, state
        self.order, self.next = [], 0
        self.reading = [None] * B  # each stream's paragraph, or None
        self.place = [0] * B  # the place of its next input in it

    def _left(self, b):
        p = self.reading[b]
        return 0 if p is None else len(self.paragraphs[p]) - 1 - self.place[b]

    def window(self):
        """(xs (n+1, B) inputs, targets (n, B), -1 where a stream has none, fresh (B,):
        the streams that start a paragraph, from a zero state); n is the most steps a
        stream has left, up to T. The places move on."""
        B = len(self.reading)
        fresh = np.zeros(B, bool)
        for b in range(B):
            if self._left(b) == 0:
                if self.next == len(self.order):
                    self.order, self.state = shuffled(len(self.paragraphs), self.state)
                    self.next = 0
                self.reading[b], self.place[b] = self.order[self.next], 0
                self.next += 1
                fresh[b] = True
        n = max(min(self.T, self._left(b)) for b in range(B))
        xs = np.zeros((n + 1, B), np.int64)
        targets = np.full((n, B), -1)
        for b in range(B):
            ids, at = self.paragraphs[self.reading[b]], self.place[b]
            r = min(n, self._left(b))
            xs[:r + 1, b] = ids[at:at + r + 1]
            xs[r + 1:, b] = ids[at + r]  # (what the padded steps read does not matter)
            targets[:r, b] = ids[at + 1:at + r + 1]
            self.place[b] += r
        return xs, targets, fresh
