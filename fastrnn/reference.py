"""The yardstick: min-char-rnn, ported to Python 3 and kept as plain numpy.

This is Karpathy's min-char-rnn with three changes only: Python 3, the vocabulary is
``sorted(set(text))`` (the original's ``list(set(...))`` order is arbitrary), and the
parameters, text and random generator are passed in instead of being globals. Tests
compare fastrnn's kernels with it and the benchmark times it; nothing else uses it.
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
