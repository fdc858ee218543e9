"""Trial functions for the sweep tests; a module of its own so that spawned workers can
import them."""
import os

from fastrnn.sweeps import run_trial


def dies_on_t1(name, cfg):
    """A worker that is killed while running trial t1 (as by the OOM killer)."""
    if name == "t1":
        os._exit(9)
    return run_trial(name, cfg)
