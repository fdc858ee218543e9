"""Where trials run: a local pool that gives each trial a spawned process of its own,
or a Dask cluster (after checking that a scheduler answers at its address)."""
import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import socket
import struct
import time

from ..errors import UserError


def _worker_env(threads=1):
    """Trials use one thread each unless the sweep file says `threads`: workers are the
    parallelism (and an OpenMP pool inherited by fork hangs, hence spawn)."""
    n = str(threads)
    return {"NUMBA_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": n}


class IsolatedPool:
    """A concurrent.futures-style pool that runs each task in a fresh spawned process,
    at most `workers` at once, so that a worker that dies (killed, out of memory) takes
    only its own trial with it."""

    def __init__(self, workers):
        self.threads = cf.ThreadPoolExecutor(max_workers=workers)

    def submit(self, fn, *args):
        return self.threads.submit(_in_own_process, fn, *args)

    def shutdown(self):
        self.threads.shutdown(wait=True)


def _in_own_process(fn, *args):
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=die_with_parent,
                                initargs=(os.getpid(),)) as pool:
        return pool.submit(fn, *args).result()


def die_with_parent(parent):
    """A trial worker's initializer: end this process when the sweep's (parent) ends,
    however it ends (SIGKILL too), so that no trial trains on alone and a rerun never
    meets it in its folder. On Linux the kernel sends SIGKILL (PR_SET_PDEATHSIG);
    everywhere a thread also watches the parent's pid."""
    import signal
    import threading
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the watching thread alone

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    if os.getppid() != parent:  # the parent ended before the signal was asked for
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


@contextlib.contextmanager
def local_executor(workers, threads=1):
    saved = {k: os.environ.get(k) for k in _worker_env()}
    os.environ.update(_worker_env(threads))  # inherited by the spawned workers
    pool = IsolatedPool(workers)
    try:
        yield pool
    finally:
        pool.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def dask_executor(address, timeout=5):
    try:
        from distributed import Client
    except ImportError:
        raise UserError("--executor dask needs Dask: pip install 'fastrnn[dask]'") from None
    probe_scheduler(address, timeout)
    try:
        client = Client(address, timeout=timeout)
    except Exception as e:  # noqa: BLE001 -- whatever the connection raises, it failed
        raise UserError(f"cannot reach the Dask scheduler at {address} ({e.__class__.__name__}"
                        f"); start one (dask scheduler) or fix --address") from None
    try:
        yield client.get_executor()
    finally:
        client.close()


def probe_scheduler(address, timeout=5):
    """UserError unless a Dask scheduler answers at a tcp:// address within timeout
    seconds. A scheduler speaks first: on a new connection it sends its handshake, a
    frame whose 8-byte little-endian length is small. Something else (a web server, a
    silent socket) says nothing, or something else, and Dask's client would wait for it
    for minutes or read its bytes as a frame length."""
    scheme, sep, rest = address.rpartition("://")
    if sep and scheme != "tcp":
        return  # tls, ucx, ...: the client's own timeout applies
    host, _, port = rest.rpartition(":")
    fix = "start one (dask scheduler) or fix --address"
    try:
        port = int(port)
    except ValueError:
        raise UserError(f"--address {address}: expected tcp://HOST:PORT") from None
    deadline = time.monotonic() + timeout

    def unreachable(e):
        return UserError(f"cannot reach the Dask scheduler at {address} "
                         f"({getattr(e, 'strerror', None) or type(e).__name__}); {fix}")

    try:
        sock = socket.create_connection((host.strip("[]"), port), timeout=timeout)
    except (OSError, OverflowError) as e:  # OverflowError: a port above 65535
        raise unreachable(e) from None
    except UnicodeError:  # an empty or over-long host label (IDNA)
        raise UserError(f"--address {address}: the host name is not a valid one (each "
                        f"dot-separated part 1 to 63 characters); {fix}") from None
    head = b""
    with sock:
        try:
            while len(head) < 8:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    raise UserError(f"{address} closed the connection without a word: it "
                                    f"is not a Dask scheduler; {fix}")
                head += chunk
        except TimeoutError:
            raise UserError(f"{address} accepts connections but sent nothing in {timeout} "
                            f"s: it is not a Dask scheduler (or not a working one); "
                            f"{fix}") from None
        except OSError as e:
            raise unreachable(e) from None
    if not 0 < struct.unpack("<Q", head)[0] < 2**20:
        raise UserError(f"{address} answered with {head!r}...: it is not a Dask "
                        f"scheduler; {fix}")
