"""kernels.team.Workers: a team's training call run by all its threads or by the
calling thread alone, chosen by measured time; the results the same to the bit."""
import numpy as np

from conftest import SMALL_TEXT, tiny_config
from fastrnn import Trainer
from fastrnn.kernels.team import Workers
from teams import needs_two


class Scripted(Workers):
    """Workers whose slices follow a script of (workers, iterations), in turn."""

    def __init__(self, size, script):
        super().__init__(size)
        self.script, self.at = script, 0

    def choose(self, remaining):
        workers, n = self.script[self.at % len(self.script)]
        self.at += 1
        return workers, min(n, remaining)


def trained(script):
    # float64 and no dropout: test_trainer's team test compiles the same kernels
    cfg = tiny_config(model={"kind": "lstm", "hidden": 16, "layers": 2},
                      train={"batch_size": 4, "seq_length": 8, "threads": 2})
    t = Trainer(cfg, text=SMALL_TEXT * 4)
    t.workers = Scripted(2, script)
    losses = np.concatenate([t.train_iters(7), t.train_iters(6)])
    assert t.chunks == 2 and isinstance(t.workers, Scripted) and t.workers.at >= 2
    return losses, t.model.theta.copy()


@needs_two
def test_slices_on_one_thread_or_two_give_the_same_bits():
    """Thirteen iterations as one call per train_iters on two threads, against slices
    of one to three iterations that alternate between the calling thread alone and
    both threads."""
    whole_losses, whole = trained([(2, 100)])
    mixed_losses, mixed = trained([(1, 1), (2, 3), (1, 2), (2, 1)])
    assert np.array_equal(whole_losses, mixed_losses)
    assert np.array_equal(whole, mixed)


def run(policy, seconds_per_iteration, slices):
    """The workers of `slices` slices, each timed by seconds_per_iteration(workers, i)."""
    chosen = []
    for i in range(slices):
        workers, n = policy.choose(1000)
        policy.record(workers, n, n * seconds_per_iteration(workers, i))
        chosen.append(workers)
    return chosen


def test_a_quiet_machine_keeps_both_threads_and_tries_one_less_and_less_often():
    policy = Workers(2)
    chosen = run(policy, lambda w, i: 1.0 if w == 2 else 1.8, 200)
    probes = [i for i, w in enumerate(chosen) if w == 1]
    assert chosen[:2] == [2, 2] and len(probes) >= 3
    gaps = np.diff(probes)
    assert (gaps[1:] >= gaps[:-1]).all() and gaps[-1] > 2 * gaps[0]
    assert len(probes) < 200 * 0.06


def test_a_busy_machine_moves_to_one_thread_and_back_when_it_is_quiet_again():
    """Two threads take twice as long from slice 20 to slice 120 (another process on
    the other core), then are faster again."""
    def timing(workers, i):
        busy = 20 <= i < 120
        return (2.0 if busy else 0.6) if workers == 2 else 1.0
    chosen = run(Workers(2), timing, 300)
    assert chosen[21] == 1  # (the slice after the first slow one)
    assert chosen[25:120].count(2) < 10  # only probes
    assert chosen[-20:].count(2) >= 18  # both threads again
    assert chosen[:20].count(1) <= 4  # (probes only)


def test_slices_last_about_a_quarter_second_and_probes_one_iteration():
    policy = Workers(2)
    policy.record(2, 1, 5.0)  # (the first call: compiling, not counted)
    assert not policy.per_iteration[2]
    workers, n = policy.choose(10_000)
    policy.record(workers, n, n * 0.001)
    assert policy.choose(10_000) == (2, 250)
    policy.since = policy.interval
    assert policy.choose(10_000) == (1, 20)
