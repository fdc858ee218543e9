"""The threads of one compiled call, sharing its work a phase at a time.

A kernel that runs on several threads is called once on each (run(), below: this
thread and others from a pool, the compiled code releasing the GIL), and every thread
runs the same iteration loop. Each piece of work in that loop is a phase of n items: a
thread claims the next free item (an atomic counter), does it, counts it done, and
leaves the phase once all n are done. A thread therefore waits only for items that
another thread is running, so the call completes even if the region's threads run one
after the other. Which thread takes an item never changes the item's arithmetic:
results depend on how the work is split into items, never on timing. On one thread the
kernels take a Solo instead, for which each phase is one item and none of this code is
compiled.

    i = first(team, n)
    while i >= 0:
        ...                      # item i of n
        i = after(team, n, i)
    close(team, n)

Every thread calls every phase with the same n, worked out from shapes and the team's
size only, and writes shared arrays only inside items. What a thread reads outside an
item (a paragraph window's steps) must not be rewritten later in the same call: a thread
may run the next phases' items alone before another has come to read it.
"""
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .jit import jit
from .sync import compare_exchange, cpu_relax, fetch_add, load_acquire

# flags: (flag_count(threads),) int64, zeroed before the region; me: this thread's
# number; size: the threads in the team
Team = namedtuple("Team", "flags me size")
# A team of one thread, as a type of its own so that the kernels it runs are compiled
# without any of the above: every phase is one item, taken in order.
Solo = namedtuple("Solo", [])

LINE = 8  # int64s to a cache line: each counter on a line of its own
NEXT, DONE, BASE = 0, LINE, 2 * LINE  # items claimed, items done; BASE + me * LINE:
# the first item of this thread's current phase


def flag_count(threads):
    return (2 + threads) * LINE


@jit
def span(ch, chunks, n, align):
    """The part [lo, hi) of range(n) that chunk ch of `chunks` takes, its boundaries on
    multiples of align."""
    lo = (ch * n // chunks) // align * align
    hi = n if ch == chunks - 1 else ((ch + 1) * n // chunks) // align * align
    return lo, hi


def items(team, most, work, small):
    """How many items to split work (multiply-adds, or the like) into: at most `most`
    and the team's size, and one when it is under `small`."""


def first(team, n):
    """This thread's first item of a phase of n, or -1."""


def after(team, n, i):
    """Item i is done: the next one for this thread, or -1."""


def close(team, n):
    """Wait until all n items of the phase are done."""


def _solo(team):
    return isinstance(team, types.NamedTuple) and team.instance_class is Solo


@overload(items)
def _items(team, most, work, small):
    if _solo(team):
        return lambda team, most, work, small: 1
    return lambda team, most, work, small: max(1, min(team.size, most, work // small))


@overload(first)
def _first(team, n):
    if _solo(team):
        return lambda team, n: 0 if n > 0 else -1
    return lambda team, n: _claim(team, n)


@overload(after)
def _after(team, n, i):
    if _solo(team):
        return lambda team, n, i: i + 1 if i + 1 < n else -1
    return lambda team, n, i: _done_and_claim(team, n)


@overload(close)
def _close(team, n):
    if _solo(team):
        return lambda team, n: None
    return _close_team


@jit
def _done_and_claim(team, n):
    fetch_add(team.flags, DONE, 1)
    return _claim(team, n)


def _close_team(team, n):
    at = BASE + team.me * LINE
    end = team.flags[at] + n
    while load_acquire(team.flags, DONE) < end:
        cpu_relax()
    team.flags[at] = end


@jit
def _claim(team, n):
    end = team.flags[BASE + team.me * LINE] + n
    while True:
        taken = load_acquire(team.flags, NEXT)
        if taken >= end:
            return -1
        if compare_exchange(team.flags, NEXT, taken, taken + 1):
            return taken - (end - n)


# --- on the Python side: running a compiled entry point on a team ---------------------
class Call:
    """A compiled entry point fn (a nogil jit function whose last argument is the team)
    and its other arguments, to be run by a team of `threads`: on that many threads, or
    with workers, on only the first `workers` of them (the calling thread alone, with
    1), which then take every item between them. The items are the team's either way,
    so the results are the same to the bit."""

    def __init__(self, fn, args, threads=1, workers=None):
        self.fn, self.args, self.threads = fn, tuple(args), threads
        self.workers = threads if workers is None else max(1, min(workers, threads))

    def __call__(self):
        if self.threads == 1:
            return self.fn(*self.args, Solo())
        flags = np.zeros(flag_count(self.threads), np.int64)
        others = [_pool(self.threads - 1).submit(self.fn, *self.args,
                                                 Team(flags, me, self.threads))
                  for me in range(1, self.workers)]
        result = self.fn(*self.args, Team(flags, 0, self.threads))
        for f in others:
            f.result()
        return result

    def signature(self):
        """The Numba types fn is compiled for."""
        team = Solo() if self.threads == 1 else Team(np.zeros(1, np.int64), 0, self.threads)
        return tuple(numba.typeof(a) for a in self.args + (team,))


class Workers:
    """How many of a team's threads run its next training call: all of them, or only the
    calling thread when that measures faster, as it does when another process keeps a
    core busy (a waiting thread cannot give way: team.close spins) or when the work is
    too small to share. Either way the team's items are the same (Call), so the choice
    never changes a result, only the time.

    The calls are slices of about SLICE seconds; the choice in use is timed on every
    slice, and the other is tried on a slice of one iteration (or PROBE seconds) after
    FIRST slices, then after twice as many each time it loses, up to MOST; it takes
    over when it is 3% faster, or when the choice in use becomes 3% slower than the
    other's last time."""

    SLICE, PROBE, FIRST, MOST, MARGIN = 0.25, 0.02, 2, 64, 0.97

    def __init__(self, size):
        self.size = size
        self.current = size
        self.per_iteration = {size: None, 1: None}
        self.interval, self.since = self.FIRST, 0
        self.warm = False  # (the first call compiles: not timed)
        self.probing = False

    def other(self):
        return 1 if self.current == self.size else self.size

    def choose(self, remaining):
        """(workers, iterations) of the next slice, of `remaining` iterations to go."""
        self.probing = self.warm and self.since >= self.interval
        workers = self.other() if self.probing else self.current
        known = [t for t in self.per_iteration.values() if t]
        if not self.warm or not known:
            return workers, 1
        seconds = self.PROBE if self.probing else self.SLICE
        return workers, max(1, min(remaining, int(seconds / min(known))))

    def record(self, workers, iterations, seconds):
        """A slice of `iterations` on `workers` took `seconds`."""
        if not self.warm:
            self.warm = True
            return
        t = seconds / iterations
        self.per_iteration[workers] = t
        if self.probing:
            self.since = 0
            if t < self.MARGIN * self.per_iteration[self.current]:
                self.current, self.interval = workers, self.FIRST
            else:
                self.interval = min(2 * self.interval, self.MOST)
            return
        self.since += 1
        other = self.per_iteration[self.other()]
        if other is not None and self.MARGIN * t > other:
            self.current, self.interval, self.since = self.other(), self.FIRST, 0


_POOLS = {}


def _pool(n):
    """A pool of n threads, made once and kept."""
    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="fastrnn")
    return _POOLS[n]
