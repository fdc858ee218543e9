"""fastrnn in float64 reproduces min-char-rnn (the numpy reference) to the bit.

min-char-rnn's training is chaotic: a difference in the last bit of one number grows to
O(1) within a few hundred iterations. numpy's AVX-512 exp/log/tanh differ from the C
library's in the last bit, so the comparison runs in a child process with numpy's
SIMD dispatch off (NPY_DISABLE_CPU_FEATURES); both sides then use the C library.
"""
import json
import os
import subprocess
import sys

import numpy as np

ITERS = 2000


def child():
    from conftest import SMALL_TEXT
    from fastrnn import Trainer
    from fastrnn.reference import MinCharRNN

    text = SMALL_TEXT
    ref = MinCharRNN(text, hidden_size=100, seq_length=25, learning_rate=0.1, seed=7)
    fast = Trainer({"data": {"val_fraction": 0.0}, "model": {"hidden": 100},
                    "optim": {"lr": 0.1, "clip": 5.0},
                    "train": {"seq_length": 25, "dtype": "float64", "seed": 7}}, text=text)
    ref_losses = ref.train(ITERS) / 25  # the reference's loss is summed over the steps
    fast_losses = fast.train_iters(ITERS)
    params = fast.params()
    names = {"Wxh": "Wxh.0", "Whh": "Whh.0", "bh": "bh.0", "Why": "Why", "by": "by"}
    param_err = {k: float(np.max(np.abs(params[v].reshape(ref.params[k].shape)
                                        - ref.params[k]) / (np.abs(ref.params[k]) + 1e-300)))
                 for k, v in names.items()}
    print(json.dumps(dict(
        wraps=int(ITERS * 25 // len(text)),
        loss_rel=float(np.max(np.abs(fast_losses - ref_losses) / ref_losses)),
        param_rel=param_err,
        smooth=[ref.smooth_loss, fast.smooth_loss],
        final_loss=float(ref_losses[-1]))))


def test_float64_losses_and_params_match_min_char_rnn():
    from numpy._core._multiarray_umath import __cpu_dispatch__
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(__cpu_dispatch__))
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, __file__, "child"], env=env, cwd=here,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["wraps"] >= 5
    assert r["final_loss"] < 0.5  # it learned the text, so the run means something
    assert r["loss_rel"] < 1e-9
    for name, err in r["param_rel"].items():
        assert err < 1e-9, name
    assert abs(r["smooth"][0] - r["smooth"][1]) < 1e-9 * r["smooth"][0]


if __name__ == "__main__" and sys.argv[1:] == ["child"]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    child()
