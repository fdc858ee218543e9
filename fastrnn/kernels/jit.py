"""The one place that sets fastrnn's Numba options.

cache=True: compiled code is written beside the sources, so a second run starts fast.
nogil=True: compiled code releases the GIL, so a team's threads (kernels.team) run it
side by side.
error_model='numpy': division by zero gives inf/nan instead of raising, which lets LLVM
vectorise loops that divide (the Adagrad update).
fastmath stays off: it lets LLVM assume no NaN, which makes isnan() always false and
would hide a diverging run.
_nrt=False: no reference counts. Numba counts the references to every array a compiled
function is given or makes (a view, a slice): an atomic increment when the function
starts or the view is made and a decrement when it ends, and its pruning of these
pairs misses most of them across loops and calls. Every array a kernel touches is
allocated by the trainer, which holds it for the whole call, so the counts keep nothing
alive; at hidden 100 they were about 1,100 atomic operations an iteration, and
one-stream models of hidden 100 and 128 ran 6-13% faster without them (CHANGELOG.md).
Without them a kernel cannot allocate (jit_nrt, for the one that does) nor return an
array it was not given (returns_view, below).

The cache is stale when any kernel source changes. Numba checks only the file that
defines a function, but a kernel's compiled code holds the code of every kernel it
calls: with an edit to step.py alone (or an upgrade that changed it), entries.train's
cached code would still run the old step.py. So a kernel's source stamp here is a
hash of all of them, and it is part of the cache files' names too: Numba unpickles an
index before it compares stamps, and an index of other sources may name a record type
these no longer have (an upgrade would fail with an AttributeError).
"""
import glob
import hashlib
import os

# The one parallel region (kernels.duo) runs on Numba's OpenMP threads; by default they
# spin for a while after each region, taking a core from the rest of the run (the other
# kernels' teams run on Python threads). Asked before Numba loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
from numba.core import caching  # noqa: E402
from numba.extending import overload  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))


def sources_stamp(folder=_HERE):
    """A hash of every kernel source in folder (names and contents)."""
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(folder, "*.py"))):
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


_STAMP = sources_stamp()


def _stamped(locator):
    """Numba's cache locator `locator` with _STAMP as the source stamp of the kernels,
    and beside its own file's stamp for a function elsewhere compiled with these
    options (a test's or a benchmark's, which calls the kernels: without it, its cached
    code would keep running kernels that have since changed)."""
    class Stamped(locator):
        def get_source_stamp(self):
            if self._kernel:
                return _STAMP
            return (_STAMP, super().get_source_stamp())

        def get_disambiguator(self):
            # (in the cache files' names: an index written for other sources is never
            # opened, so it cannot fail to unpickle a record type those sources had)
            return f"{super().get_disambiguator()}-{_STAMP[:10]}"

        @classmethod
        def from_function(cls, py_func, py_file):
            if not getattr(py_func, "_fastrnn_jit", False):
                return None
            found = super().from_function(py_func, py_file)
            if found is not None:
                found._kernel = os.path.dirname(os.path.abspath(py_file)) == _HERE
            return found
    Stamped.__name__ = f"Kernels{locator.__name__.lstrip('_')}"
    return Stamped


def _install_locators():
    """Ours first in Numba's list of cache locators (named with or without a leading
    underscore, by Numba version): a cache directory given by NUMBA_CACHE_DIR, beside
    the sources, or the user's when the sources' folder cannot be written."""
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    ours = []
    for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator"):
        locator = getattr(caching, name, None) or getattr(caching, "_" + name)
        ours.append(_stamped(locator))
    impl._locator_classes = ours + [c for c in impl._locator_classes
                                    if not c.__name__.startswith("Kernels")]


_install_locators()

def _options(**options):
    """numba.njit with these options, marking each function for the locators above."""
    def decorate(fn):
        fn._fastrnn_jit = True
        return numba.njit(**options)(fn)
    return decorate


jit = _options(cache=True, error_model="numpy", nogil=True, _nrt=False)
# For a kernel that allocates (kernels.output.pairwise_sum's stack): its own arrays are
# counted and freed, the ones it is given still borrowed.
jit_nrt = _options(cache=True, error_model="numpy", nogil=True, _nrt=True)


def returns_view(fn):
    """@overload for a function that returns a view of (or an array in) its arguments.
    Numba will not compile a function without reference counts that returns an array it
    was not given, so this one is typed as counted code and then inlined into its
    caller, where it is compiled without counts like the rest."""
    return overload(fn, inline="always", jit_options={"_nrt": True})


# For the one kernel that starts Numba's own threads (kernels.duo).
pjit = _options(cache=True, error_model="numpy", nogil=True, parallel=True)
