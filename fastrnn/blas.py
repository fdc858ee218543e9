"""The thread count of the BLAS that compiled kernels call.

Numba's np.dot calls scipy's OpenBLAS. Its threads help large matrix products and hurt
the small ones of a single stream (measured on 2 cores, hidden 512: a (512, 25) x
(25, 512) float32 product takes 190 us on one thread and 490 us on two), so the
trainer sets the count it wants before each chunk.
"""
import ctypes
import glob
import os

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads")
_setter = None
_current = None


def _find_setter():
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads scipy's BLAS)
    libs = os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs")
    candidates = glob.glob(os.path.join(libs, "*openblas*"))
    try:
        with open("/proc/self/maps") as f:
            candidates += [line.split()[-1] for line in f if "openblas" in line]
    except OSError:
        pass
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            if hasattr(lib, name):
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = [ctypes.c_int], None
                return fn
    return lambda n: None  # another BLAS: leave its threads as they are


def set_threads(n):
    """Use n BLAS threads in the kernels (a no-op when it is already n)."""
    global _setter, _current
    if n == _current:
        return
    if _setter is None:
        _setter = _find_setter()
    _setter(int(n))
    _current = n
