"""min-char-rnn's model on two threads (kernels.duo) is the one-thread exact kernel to
the bit, and finishes when its two threads run one after the other."""
import os

import numpy as np
import pytest
from conftest import SMALL_TEXT, tiny_config
from teams import needs_two

from fastrnn import Trainer
from fastrnn.kernels import duo


def pair(optim, hidden=20, **train):
    def make(threads):
        cfg = tiny_config(model={"hidden": hidden}, optim=optim,
                          train={"seq_length": 10, "threads": threads, **train})
        return Trainer(cfg, text=SMALL_TEXT)
    return make(1), make(2)


def assert_same_state(one, two):
    for name, value in one.params().items():
        assert np.array_equal(value, two.params()[name]), name
    assert np.array_equal(one.net.memory, two.net.memory)
    assert np.array_equal(one.cursor, two.cursor)
    assert np.array_equal(one.buf.hs[:, 0], two.buf.hs[:, 0])


@needs_two
@pytest.mark.parametrize("hidden", [20, duo.FOLLOW_BPTT])  # dWhh by rows, by steps
@pytest.mark.parametrize("optim", [
    {},  # min-char-rnn's Adagrad with clipping
    {"name": "adam", "lr": 0.01, "clip_norm": 0.5, "lr_decay": 0.9, "decay_every": 40},
])
def test_two_threads_are_the_one_thread_kernel_to_the_bit(optim, hidden):
    one, two = pair(optim, hidden)
    assert not one.duo or one.threads == 1
    assert two.duo and two.threads == 2
    want = one.train_iters(300)
    got = np.concatenate([two.train_iters(n) for n in (1, 120, 179)])  # carried across calls
    assert two.chunks == 2
    assert np.array_equal(want, got)
    if not optim:  # min-char-rnn's settings learn the text, through many data wraps
        assert got[-20:].mean() < 0.6 * got[:20].mean()
    assert_same_state(one, two)


@needs_two
def test_state_resets_on_two_threads_are_the_one_thread_kernels():
    """train.state_resets draws from the generator in the duo's reading thread as the
    one-thread kernel does: the same losses and state to the bit, and not those of a
    run without resets."""
    one, two = pair({}, state_resets=0.3)
    assert two.duo and two.threads == 2
    want = one.train_iters(200)
    assert np.array_equal(want, np.concatenate([two.train_iters(n) for n in (7, 193)]))
    assert_same_state(one, two)
    assert np.array_equal(one.run.rng, two.run.rng)
    assert not np.array_equal(want, pair({})[0].train_iters(200))


@needs_two
@pytest.mark.parametrize("hidden", [20, duo.FOLLOW_BPTT])
def test_finishes_when_the_threads_run_one_after_the_other(hidden):
    one, two = pair({}, hidden)
    want = one.train_iters(50)
    got = np.empty(50)
    call = two.train_call(got)
    assert call.fn is duo.rnn_train_duo
    two.buf.duo[:] = 0
    for thread in (0, 1):  # the two threads' halves on this thread, in turn
        duo.rnn_train_duo_half(got, two.net, two.run, two.buf, thread)
    two.buf.hs[:, 0] = two.buf.hs[:, -1]
    assert two.chunks == 2
    assert np.array_equal(want, got)
    assert_same_state(one, two)


def test_only_min_char_rnns_exact_model_runs_on_two_threads_by_default():
    def duo(**sections):
        return Trainer(tiny_config(**sections), text=SMALL_TEXT).duo
    assert duo()
    assert not duo(train={"dtype": "float32"})
    assert not duo(train={"exact": False})
    assert not duo(model={"layers": 2})
    assert not duo(train={"batch_size": 2})
    assert not duo(model={"kind": "gru"})


@needs_two
def test_by_default_the_duo_takes_two_threads_from_hidden_48_and_one_below():
    """Below hidden 48 its two threads, waiting on each other every step, are slower
    than one (benchmarks/bench_threads.py)."""
    def make(hidden):
        return Trainer(tiny_config(model={"hidden": hidden}), text=SMALL_TEXT)
    small, large = make(47), make(48)
    assert small.duo and small.threads == 1
    assert large.duo and large.threads == os.cpu_count()
