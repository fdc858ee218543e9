"""The shipped configs learn: a model that cannot leave the unigram level is caught."""
from pathlib import Path

import numpy as np

from fastrnn import Trainer
from fastrnn.config import load_yaml
from fastrnn.data import read_corpus

CONFIGS = Path(__file__).parent.parent / "configs"


def unigram_nats(text):
    """The loss of a model that knows only the characters' frequencies."""
    _, counts = np.unique(list(text), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_the_3_layer_tanh_config_learns_within_a_few_thousand_iterations():
    """configs/shakespeare_3layer.yaml at its own settings (3 x 512 tanh layers, its
    initialisation and lr) on the first 60,000 characters of tinyshakespeare: the
    training loss of iterations 2,500-3,000 is well below the unigram level. With
    min-char-rnn's initialisation and lr 0.1 it stays at that level (about 3.3 nats)
    for tens of thousands of iterations. On one thread: the kernels of every other
    one-stream float32 test (a team of two would compile its own, and wait on a core
    the suite's other worker holds)."""
    cfg = load_yaml(CONFIGS / "shakespeare_3layer.yaml",
                    ["data.val_fraction=0", "train.threads=1"])
    assert (cfg.model.layers, cfg.model.hidden) == (3, 512)
    text = read_corpus(cfg.data.path)[:60_000]
    losses = Trainer(cfg, text=text).train_iters(3000)
    assert np.mean(losses[-500:]) < unigram_nats(text) - 0.4


def test_the_configs_point_to_the_docs_pages_that_hold_their_results():
    """A config's comments name a docs page that exists, not the README, which keeps no
    results."""
    import re
    for path in sorted(CONFIGS.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert "README" not in text, path
        for page in re.findall(r"docs/[\w.]+\.md", text):
            assert (CONFIGS.parent / page).is_file(), (path, page)
