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
    and its other arguments, to be run on `threads` threads."""

    def __init__(self, fn, args, threads=1):
        self.fn, self.args, self.threads = fn, tuple(args), threads

    def __call__(self):
        if self.threads == 1:
            return self.fn(*self.args, Solo())
        flags = np.zeros(flag_count(self.threads), np.int64)
        others = [_pool(self.threads - 1).submit(self.fn, *self.args,
                                                 Team(flags, me, self.threads))
                  for me in range(1, self.threads)]
        result = self.fn(*self.args, Team(flags, 0, self.threads))
        for f in others:
            f.result()
        return result

    def signature(self):
        """The Numba types fn is compiled for."""
        team = Solo() if self.threads == 1 else Team(np.zeros(1, np.int64), 0, self.threads)
        return tuple(numba.typeof(a) for a in self.args + (team,))


_POOLS = {}


def _pool(n):
    """A pool of n threads, made once and kept."""
    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="fastrnn")
    return _POOLS[n]
