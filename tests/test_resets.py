"""train.state_resets: each stream's carried state zeroed at the start of a window with
a given chance, so that a model learns to start from nothing."""
import numpy as np
import pytest

import fastrnn
from conftest import SMALL_TEXT, tiny_config
from fastrnn import Trainer, UserError


def make(resets, batch=3, text=SMALL_TEXT * 4):
    # tiny_config's float64 min-char-rnn arithmetic on one thread: the kernels of most
    # other tests
    return Trainer(tiny_config(model={"hidden": 10},
                               train={"batch_size": batch, "threads": 1,
                                      "state_resets": resets}), text=text)


def test_resets_of_one_start_every_window_from_a_zero_state():
    """With state_resets 1, training equals training that zeroes the carried states
    between iterations by hand, to the bit."""
    every, by_hand = make(1.0), make(0.0)
    losses = every.train_iters(12)
    for k in range(12):
        by_hand.buf.hs[:, 0] = 0
        assert by_hand.train_iters(1)[0] == losses[k], k
    assert np.array_equal(every.model.theta, by_hand.model.theta)


def test_some_resets_zero_some_streams_and_resume_to_the_bit(tmp_path):
    """At 0.4 the losses differ from both no resets and resets at every window; a
    checkpoint carries the generator, so a resumed run continues to the bit."""
    runs = {r: make(r).train_iters(12) for r in (0.0, 0.4, 1.0)}
    assert not np.array_equal(runs[0.4], runs[0.0])
    assert not np.array_equal(runs[0.4], runs[1.0])
    (tmp_path / "text.txt").write_text(SMALL_TEXT * 4)
    cfg = tiny_config(data={"path": str(tmp_path / "text.txt")}, model={"hidden": 10},
                      train={"batch_size": 3, "threads": 1, "state_resets": 0.4})
    whole = Trainer(cfg)
    first = Trainer(cfg)
    first.train_iters(5)
    first.save(tmp_path / "x.npz")
    resumed = fastrnn.load(tmp_path / "x.npz")
    assert np.array_equal(whole.train_iters(12)[5:], resumed.train_iters(7))
    assert np.array_equal(whole.model.theta, resumed.model.theta)


def test_a_pass_still_starts_every_stream_from_zero():
    """The window at the start of a pass is min-char-rnn's: all states zeroed, no draw
    needed; iteration 0 with no resets equals iteration 0 with resets of one."""
    assert make(0.0).train_iters(1)[0] == make(1.0).train_iters(1)[0]


def test_resets_belong_to_streams_of_text():
    with pytest.raises(UserError, match="train.state_resets=0.5 belongs to data.records"):
        Trainer(tiny_config(data={"records": "paragraphs"},
                            train={"state_resets": 0.5}), text=SMALL_TEXT)
    with pytest.raises(UserError, match="train.state_resets"):
        Trainer(tiny_config(train={"state_resets": 1.5}), text=SMALL_TEXT)
