import numpy as np
import pytest

# A small text with structure to learn and a wrap of the data pointer every few
# iterations: the yardstick tests train through many wraps.
SMALL_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die "
    "than to famish?\n\nAll:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you "
    "know Caius Marcius is chief enemy to the people.\n"
)


@pytest.fixture
def small_text():
    return SMALL_TEXT


def tiny_config(**sections):
    """A nested config dict for a small, fast model; sections override the defaults."""
    cfg = {"data": {"val_fraction": 0.0},
           "model": {"hidden": 8},
           "train": {"seq_length": 6, "dtype": "float64", "seed": 1}}
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def check_finite_differences(trainer, xs, per_param=6, eps=1e-6, seed=0):
    """Compare trainer.gradients(xs) with central differences of its loss at a few
    random elements of every parameter."""
    _, grads = trainer.gradients(xs)
    rs = np.random.RandomState(seed)
    for name, value in trainer.params().items():
        flat = value.ravel()
        for i in rs.choice(flat.size, size=min(flat.size, per_param), replace=False):
            plus, minus = flat.copy(), flat.copy()
            plus[i] += eps
            minus[i] -= eps
            trainer.set_params({name: plus.reshape(value.shape)})
            lp, _ = trainer.gradients(xs)
            trainer.set_params({name: minus.reshape(value.shape)})
            lm, _ = trainer.gradients(xs)
            trainer.set_params({name: value})
            numeric = (lp - lm) / (2 * eps)
            analytic = grads[name].ravel()[i]
            assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (name, i)
