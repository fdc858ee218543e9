"""The one place that sets fastrnn's Numba options.

cache=True: compiled code is written beside the sources, so a second run starts fast.
error_model='numpy': division by zero gives inf/nan instead of raising, which lets LLVM
vectorise loops that divide (the Adagrad update).
fastmath stays off: it lets LLVM assume no NaN, which makes isnan() always false and
would hide a diverging run.
"""
import numba

jit = numba.njit(cache=True, error_model="numpy", nogil=True)

# For kernels that split independent streams across cores with prange; the number of
# threads is numba.set_num_threads() (NUMBA_NUM_THREADS at most).
# A function that calls a parallel one cannot be cached (the inner one is a dynamic
# global to it), so the parallel pieces are inlined into their callers, all parallel.
pjit = numba.njit(cache=True, error_model="numpy", nogil=True, parallel=True)
pjit_inline = numba.njit(cache=True, error_model="numpy", nogil=True, parallel=True,
                         inline="always")
