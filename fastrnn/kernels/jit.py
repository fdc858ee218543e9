"""The one place that sets fastrnn's Numba options.

cache=True: compiled code is written beside the sources, so a second run starts fast.
error_model='numpy': division by zero gives inf/nan instead of raising, which lets LLVM
vectorise loops that divide (the Adagrad update).
fastmath stays off: it lets LLVM assume no NaN, which makes isnan() always false and
would hide a diverging run.
"""
import numba

jit = numba.njit(cache=True, error_model="numpy", nogil=True)

# For the entry points that start a team of threads (kernels.team): one prange over the
# threads, each running plain jit code; the number of threads is
# numba.set_num_threads() (NUMBA_NUM_THREADS at most). Nothing else is parallel, so
# Numba's parallel passes see only these small functions.
pjit = numba.njit(cache=True, error_model="numpy", nogil=True, parallel=True)
