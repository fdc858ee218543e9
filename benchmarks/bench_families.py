"""Every model family against its numpy reference and PyTorch (if installed), timed in
the same run.

    python benchmarks/bench_families.py [--text shakespeare] [--rounds 3]

Cases: each family at batch 1 (hidden 128, seq 25), and at batch 32 (hidden 512, seq 64)
with 1 and 2 threads. Prints it/s, characters/s, the ratios, and achieved
GFLOP/s as a fraction of this machine's single-core float32 matrix-multiply peak,
measured first in the same run; then one JSON line.

At batch 32 the same step also runs in bf16 where the CPU has AVX512_BF16: fastrnn with
train.precision=bf16 and PyTorch under torch.autocast("cpu", dtype=torch.bfloat16),
each beside its float32 self in the same rounds (--no-bf16 leaves them out).
"""
import argparse
import json
import statistics
import time

import numpy as np

try:  # before fastrnn, which asks OpenMP for passive waits (kernels.jit): PyTorch's own
    import torch  # noqa: F401  # OpenMP threads then keep their default, as in a PyTorch program
except ImportError:
    pass

from fastrnn import Trainer, blas  # noqa: E402
from fastrnn.data import read_text, resolve  # noqa: E402
from fastrnn.kernels.bfloat import BF16  # noqa: E402
from fastrnn.reference import model_loss_grads  # noqa: E402

G = {"rnn": 1, "gru": 3, "lstm": 4}


def peak_gflops(n=1024, reps=5):
    """Single-core float32 matrix-multiply rate through the BLAS the kernels use."""
    from numba import njit

    @njit
    def mm(a, b, c):
        np.dot(a, b, c)
    a = np.random.rand(n, n).astype(np.float32)
    c = np.empty_like(a)
    blas.set_threads(1)
    mm(a, a, c)
    best = min(_timed(lambda: mm(a, a, c)) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def flops_per_iter(kind, V, H, L, T, B):
    """Multiply-adds of forward and backward (backward counted as twice the forward),
    as 2 flops each; the one-hot input product counts as the row gather it is."""
    g = G[kind]
    per_char = sum(g * H * (H + (H if l else 1)) for l in range(L)) + V * H
    return 2 * 3 * per_char * T * B


class NumpyModel:
    """The numpy reference of the same model, with Adagrad."""

    def __init__(self, trainer):
        self.t = trainer
        self.params = trainer.params()
        self.mem = {k: np.zeros_like(v) for k, v in self.params.items()}
        T = trainer.config.train.seq_length
        self.xs = np.ascontiguousarray(trainer.run.data[:, :T + 1].T)

    def train(self, n):
        for _ in range(n):
            _, grads = model_loss_grads(self.t.config.model.kind, self.params, self.xs)
            for k, p in self.params.items():
                g = np.clip(grads[k], -5, 5)
                self.mem[k] += g * g
                p += -0.1 * g / np.sqrt(self.mem[k] + 1e-8)


class TorchModel:
    """PyTorch's same model and step, in float32 or (bf16) under CPU autocast."""

    def __init__(self, kind, V, H, L, T, B, threads, bf16=False):
        import torch
        self.torch, self.threads, self.bf16 = torch, threads, bf16
        cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[kind]
        self.net, self.out = cls(V, H, num_layers=L), torch.nn.Linear(H, V)
        self.params = list(self.net.parameters()) + list(self.out.parameters())
        self.opt = torch.optim.Adagrad(self.params, lr=0.1)
        self.x = torch.randint(0, V, (T + 1, B))
        self.V, self.state = V, None

    def train(self, n):
        torch, V = self.torch, self.V
        # set on every call: fastrnn's first parallel call (Numba's OpenMP threads) was
        # seen to put PyTorch back on all cores
        torch.set_num_threads(self.threads)
        for _ in range(n):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                y, state = self.net(torch.nn.functional.one_hot(self.x[:-1], V).float(),
                                    self.state)
                logits = self.out(y).reshape(-1, V).float()
            self.state = tuple(s.detach().float() for s in state) \
                if isinstance(state, tuple) else state.detach().float()
            loss = torch.nn.functional.cross_entropy(logits, self.x[1:].reshape(-1),
                                                     reduction="sum")
            self.opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(self.params, 5.0)
            self.opt.step()


def bench_case(text, kind, H, L, T, B, threads, rounds, with_numpy, bf16):
    def trainer(precision):
        return Trainer({"data": {"val_fraction": 0.0},
                        "model": {"kind": kind, "hidden": H, "layers": L},
                        "train": {"seq_length": T, "batch_size": B, "dtype": "float32",
                                  "precision": precision, "threads": threads}}, text=text)
    first = trainer("float32")
    V = len(first.vocab)
    contenders = {"fastrnn": first.train_iters}
    if bf16:
        contenders["fastrnn bf16"] = trainer("bf16").train_iters
    if with_numpy:
        contenders["numpy"] = NumpyModel(first).train
    try:
        contenders["torch"] = TorchModel(kind, V, H, L, T, B, threads).train
        if bf16:
            contenders["torch bf16"] = TorchModel(kind, V, H, L, T, B, threads, True).train
    except ImportError:
        pass
    sizes = {}
    for name, step in contenders.items():  # warm up, then size a round to ~1 s
        step(1)
        sizes[name] = max(1, int(1.0 / max(_timed(lambda: step(1)), 1e-6)))
    rates = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            blas.set_threads(threads)
            rates[name].append(sizes[name] / _timed(lambda: step(sizes[name])))
    med = {name: statistics.median(r) for name, r in rates.items()}
    return dict(kind=kind, hidden=H, layers=L, seq=T, batch=B, threads=threads,
                it_s={k: round(v, 1) for k, v in med.items()},
                chars_s={k: round(v * T * B) for k, v in med.items()},
                gflops=round(med["fastrnn"] * flops_per_iter(kind, V, H, L, T, B) / 1e9, 1))


def case_name(r):
    """A result's row name: 'gru H512 B32 T64 threads 2'."""
    return f"{r['kind']} H{r['hidden']} B{r['batch']} T{r['seq']} threads {r['threads']}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", default="shakespeare")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-bf16", action="store_true", help="leave out the bf16 rows")
    ap.add_argument("--batched", action="store_true", help="only the batch-32 cases")
    args = ap.parse_args()
    bf16 = BF16 and not args.no_bf16
    text = read_text(resolve(args.text))
    peak = peak_gflops()
    cases = [] if args.batched else [(k, 128, 1, 25, 1, 1, True, False)
                                     for k in ("rnn", "gru", "lstm")]
    cases += [(k, 512, 1, 64, 32, th, False, bf16) for k in ("rnn", "gru", "lstm")
              for th in (1, 2)]
    print(f"single-core float32 matmul peak: {peak:.1f} GFLOP/s")
    print(f"{'case':<30} {'fastrnn chars/s':>16} {'x numpy':>8} {'x torch':>8} "
          f"{'GFLOP/s':>8} {'of peak':>8}")
    results = []
    for case in cases:
        r = bench_case(text, *case[:-2], rounds=args.rounds, with_numpy=case[-2],
                       bf16=case[-1])
        results.append(r)
        c = r["chars_s"]
        name = case_name(r)
        x_np = f"{c['fastrnn'] / c['numpy']:.1f}x" if "numpy" in c else "-"
        x_t = f"{c['fastrnn'] / c['torch']:.2f}x" if "torch" in c else "-"
        print(f"{name:<30} {c['fastrnn']:>16,} {x_np:>8} {x_t:>8} {r['gflops']:>8.1f} "
              f"{r['gflops'] / (peak * r['threads']):>7.0%}", flush=True)
    for kind in G:
        c = {r["threads"]: r["chars_s"]["fastrnn"] for r in results
             if r["batch"] == 32 and r["kind"] == kind}
        print(f"{kind} B32 H512: 2 threads / 1 thread = {c[2] / c[1]:.2f}x")
    mixed = [r for r in results if "fastrnn bf16" in r["chars_s"]]
    if mixed:
        print("bf16 (fastrnn train.precision=bf16; PyTorch torch.autocast bfloat16):")
        print(f"{'case':<30} {'fastrnn bf16 chars/s':>21} {'x fastrnn f32':>14} "
              f"{'x torch bf16':>13} {'torch bf16/f32':>15}")
    for r in mixed:
        c = r["chars_s"]
        name = case_name(r)
        x_t = f"{c['fastrnn bf16'] / c['torch bf16']:.2f}x" if "torch bf16" in c else "-"
        t_t = f"{c['torch bf16'] / c['torch']:.2f}x" if "torch bf16" in c else "-"
        print(f"{name:<30} {c['fastrnn bf16']:>21,} {c['fastrnn bf16'] / c['fastrnn']:>13.2f}x "
              f"{x_t:>13} {t_t:>15}", flush=True)
    print(json.dumps(dict(peak_gflops=round(peak, 1), results=results)))


if __name__ == "__main__":
    main()
