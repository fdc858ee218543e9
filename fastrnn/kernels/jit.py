"""The one place that sets fastrnn's Numba options.

cache=True: compiled code is written beside the sources, so a second run starts fast.
nogil=True: compiled code releases the GIL, so a team's threads (kernels.team) run it
side by side.
error_model='numpy': division by zero gives inf/nan instead of raising, which lets LLVM
vectorise loops that divide (the Adagrad update).
fastmath stays off: it lets LLVM assume no NaN, which makes isnan() always false and
would hide a diverging run.
"""
import os

# The one parallel region (kernels.duo) runs on Numba's OpenMP threads; by default they
# spin for a while after each region, taking a core from the rest of the run (the other
# kernels' teams run on Python threads). Asked before Numba loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

jit = numba.njit(cache=True, error_model="numpy", nogil=True)
# For the one kernel that starts Numba's own threads (kernels.duo).
pjit = numba.njit(cache=True, error_model="numpy", nogil=True, parallel=True)
