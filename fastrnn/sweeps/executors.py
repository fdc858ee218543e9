"""Where trials run: a local pool that gives each trial a spawned process of its own,
or a Dask cluster (after checking that a scheduler answers at its address, and watching
that it keeps some worker)."""
import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import socket
import struct
import threading
import time

from ..errors import UserError

# Seconds a Dask sweep goes on with no worker connected to its scheduler (the last one
# gone, or none come) before it stops; the sweep file's worker_grace.
WORKER_GRACE = 60.0


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
def dask_executor(address, timeout=5, grace=WORKER_GRACE):
    """A pool of the Dask cluster at address whose trials fail with WorkersGone once no
    worker has been connected to the scheduler for grace seconds (a trial would
    otherwise wait for one for ever)."""
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
    pool = WatchedPool(client, address, grace)
    try:
        yield pool
    finally:
        pool.close()
        client.close()


class WorkersGone(UserError):
    """No worker has been connected to a Dask sweep's scheduler for its grace time."""


class WorkerCount:
    """How many workers the scheduler has, asked within `timeout` seconds (a scheduler
    that does not answer has none)."""

    def __init__(self, client, timeout=5):
        self.client, self.timeout = client, timeout

    def __call__(self):
        try:
            return len(self.client.nthreads(callback_timeout=self.timeout))
        except Exception:  # noqa: BLE001 -- a scheduler gone or silent: no workers
            return 0


class WatchedPool:
    """A Dask client's executor (submit -> concurrent.futures.Future) with a thread that
    asks the scheduler how many workers it has: when it has had none for grace seconds,
    every trial still pending, and any submitted later, fails with WorkersGone, which
    ends the sweep (strategies._row_of lets it through). count, clock and every: the
    worker count, the time and the pause between questions (for tests)."""

    def __init__(self, client, address, grace, count=None, clock=time.monotonic,
                 every=1.0):
        self.executor = client.get_executor()
        self.address, self.grace, self.clock = address, grace, clock
        self.count = count or WorkerCount(client)
        self.pending = set()  # our futures whose trials have not ended
        self.gone = None  # the WorkersGone, once raised
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, args=(min(every, grace / 4),),
                                       daemon=True, name="fastrnn-dask-watch")
        self.thread.start()

    def submit(self, fn, *args):
        ours = cf.Future()
        with self.lock:
            if self.gone is not None:
                ours.set_exception(self.gone)
                return ours
            self.pending.add(ours)
        self.executor.submit(fn, *args).add_done_callback(
            lambda theirs: self._settle(ours, theirs))
        return ours

    def _settle(self, ours, theirs):
        with self.lock:
            if ours not in self.pending:  # failed already: the workers went
                return
            self.pending.discard(ours)
        if theirs.cancelled():
            ours.set_exception(cf.CancelledError())
        elif theirs.exception() is not None:
            ours.set_exception(theirs.exception())
        else:
            ours.set_result(theirs.result())

    def _watch(self, every):
        seen = self.clock()  # (none yet: the grace runs from the start)
        while not self.stopped.wait(every):
            if self.count() > 0:
                seen = self.clock()
            elif self.clock() - seen >= self.grace:
                return self.fail()

    def fail(self):
        """Fail every pending trial, and every later one, with WorkersGone."""
        gone = WorkersGone(
            f"no Dask worker has been connected to the scheduler at {self.address} for "
            f"{self.grace:g} s (the last one ended, or none came), so the sweep stopped; "
            f"the results of finished trials are kept: start workers (dask worker "
            f"{self.address}) and run the same command again, or raise worker_grace in "
            f"the sweep file")
        with self.lock:
            self.gone, pending = gone, list(self.pending)
            self.pending.clear()
        for ours in pending:
            ours.set_exception(gone)

    def close(self):
        self.stopped.set()
        self.thread.join()


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
