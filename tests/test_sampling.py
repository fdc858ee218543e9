"""Sampling: top-p, several samples, a stop string, a prime file, an output file, beam
search, and the sample command's bad input."""
import itertools

import pytest

import fastrnn
from conftest import SMALL_TEXT, tiny_config
from fastrnn.cli import sample_main
from fastrnn.sampling import beam_search

PRIME = "First"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    t = fastrnn.Trainer(tiny_config(), text=SMALL_TEXT * 2)
    t.train_iters(300)
    path = tmp_path_factory.mktemp("model") / "ckpt.npz"
    t.save(path)
    return fastrnn.load(path, data=False), path


def nats(t, prime, text):
    """-log p(text | prime) from a zero state, through the trainer's public loss_of."""
    ids = [t.vocab.index(c) for c in prime + text]
    whole = t.loss_of(ids) * (len(ids) - 1)
    return whole - t.loss_of(ids[:len(prime)]) * (len(prime) - 1)


def test_top_p(model):
    t, _ = model
    full = fastrnn.sample(t, prime=PRIME, length=80, seed=3)
    assert fastrnn.sample(t, prime=PRIME, length=80, seed=3, top_p=1.0) == full
    # a tiny nucleus holds only the most likely character
    greedy = fastrnn.sample(t, prime=PRIME, length=80, temperature=0)
    assert fastrnn.sample(t, prime=PRIME, length=80, seed=3, top_p=1e-9) == greedy
    some = fastrnn.sample(t, prime=PRIME, length=80, seed=3, top_p=0.5)
    assert some not in (full, greedy) and len(some) == len(full)
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="top_p must be in"):
            fastrnn.sample(t, prime=PRIME, top_p=bad)


def test_num_samples_share_one_generator(model):
    t, _ = model
    texts = fastrnn.sample(t, prime=PRIME, length=40, seed=4, num_samples=3)
    assert isinstance(texts, list) and len(texts) == 3 and len(set(texts)) == 3
    assert texts[0] == fastrnn.sample(t, prime=PRIME, length=40, seed=4)
    assert texts == fastrnn.sample(t, prime=PRIME, length=40, seed=4, num_samples=3)
    assert all(s.startswith(PRIME) and len(s) == 45 for s in texts)
    with pytest.raises(ValueError, match="num_samples must be at least 1"):
        fastrnn.sample(t, num_samples=0)


def test_stop_ends_a_sample_after_its_first_occurrence(model):
    t, _ = model
    full = fastrnn.sample(t, prime=PRIME, length=300, seed=5)[len(PRIME):]
    stop = "e "
    assert stop in full
    cut = fastrnn.sample(t, prime=PRIME, length=300, seed=5, stop=stop)[len(PRIME):]
    assert cut == full[:full.index(stop) + len(stop)]
    # the stop string is looked for in the sampled text, not in the prime
    assert fastrnn.sample(t, prime="First ", length=300, seed=5, stop="t ") != "First "
    never = fastrnn.sample(t, prime=PRIME, length=50, seed=5, stop="~~~")
    assert never == PRIME + full[:50]


def test_prime_file(model, tmp_path):
    t, _ = model
    (tmp_path / "prime.txt").write_text("All:\nSpeak", encoding="utf-8")
    assert (fastrnn.sample(t, prime_file=tmp_path / "prime.txt", length=40, seed=2)
            == fastrnn.sample(t, prime="All:\nSpeak", length=40, seed=2))
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9".encode("latin-1"))
    (tmp_path / "empty.txt").write_bytes(b"")
    for name, match in (("missing.txt", "prime file not found"),
                        ("latin1.txt", "not valid UTF-8"), ("empty.txt", "is empty")):
        with pytest.raises(ValueError, match=match):
            fastrnn.sample(t, prime_file=tmp_path / name)
    with pytest.raises(ValueError, match="not both"):
        fastrnn.sample(t, prime="A", prime_file=tmp_path / "prime.txt")


def test_beam_search_finds_the_most_likely_continuation(model):
    t, _ = model
    greedy = fastrnn.sample(t, prime=PRIME, length=30, temperature=0)
    assert fastrnn.sample(t, prime=PRIME, length=30, beam=1) == greedy
    best = fastrnn.sample(t, prime=PRIME, length=30, beam=8)
    assert best == fastrnn.sample(t, prime=PRIME, length=30, beam=8, seed=7)  # no chance
    assert nats(t, PRIME, best[len(PRIME):]) <= nats(t, PRIME, greedy[len(PRIME):]) + 1e-9
    # with a beam as wide as the vocabulary, two characters are searched exhaustively
    V = len(t.vocab)
    two = fastrnn.sample(t, prime=PRIME, length=2, beam=V)[len(PRIME):]
    scores = {a + b: nats(t, PRIME, a + b) for a, b in itertools.product(t.vocab, repeat=2)}
    assert scores[two] == pytest.approx(min(scores.values()), abs=1e-9)
    top = fastrnn.sample(t, prime=PRIME, length=2, beam=V, num_samples=3)
    assert [s[len(PRIME):] for s in top] == sorted(scores, key=scores.get)[:3]
    with pytest.raises(ValueError, match="beam must be at least 1"):
        fastrnn.sample(t, beam=0)


def test_beam_search_from_where_training_is_and_with_a_stop(model):
    t, _ = model
    texts = beam_search(t, "", 40, 4, n=2)
    assert len(texts) == 2 and texts[0] != texts[1] and all(len(s) == 40 for s in texts)
    stop = texts[0][10:12]
    cut = beam_search(t, "", 40, 4, n=1, stop=stop)[0]
    assert cut == texts[0][:texts[0].index(stop) + 2]


def test_sample_command_writes_samples_to_a_file(model, tmp_path, capsys):
    t, path = model
    out = tmp_path / "out.txt"
    argv = [str(path), "--prime", PRIME, "--length", "40", "--seed", "4"]
    assert sample_main(argv + ["--num-samples", "2", "--output", str(out)]) == 0
    texts = fastrnn.sample(t, prime=PRIME, length=40, seed=4, num_samples=2)
    want = "".join(f"---- sample {i + 1} ----\n{s}\n" for i, s in enumerate(texts))
    assert out.read_text(encoding="utf-8") == want
    assert capsys.readouterr().out == ""
    assert sample_main(argv + ["--num-samples", "2"]) == 0
    assert capsys.readouterr().out == want
    (tmp_path / "p.txt").write_text(PRIME, encoding="utf-8")
    assert sample_main([str(path), "--prime-file", str(tmp_path / "p.txt"), "--length", "40",
                        "--beam", "3", "--stop", "e"]) == 0
    assert capsys.readouterr().out == fastrnn.sample(t, prime=PRIME, length=40, beam=3,
                                                     stop="e") + "\n"
    assert sample_main(argv + ["--top-p", "0.9", "--stop", " "]) == 0
    assert capsys.readouterr().out == fastrnn.sample(t, prime=PRIME, length=40, seed=4,
                                                     top_p=0.9, stop=" ") + "\n"


@pytest.mark.parametrize("extra,match", [
    (["--beam", "0"], "--beam must be at least 1"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--num-samples", "0"], "--num-samples must be at least 1"),
    (["--prime-file", "missing.txt"], "prime file not found"),
    (["--prime-file", "latin1.txt"], "not valid UTF-8"),
    (["--prime", "~"], "never saw"),
    (["--beam", "2", "--num-samples", "3"], "at most 2"),
    (["--stop", ""], "--stop is empty"),
])
def test_sample_command_bad_input_is_one_line_and_writes_nothing(model, tmp_path, capsys,
                                                                  monkeypatch, extra, match):
    _, path = model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9".encode("latin-1"))
    for output in ([], ["--output", "out.txt"]):
        assert sample_main([str(path), *extra, *output]) == 2
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert captured.out == "" and len(err) == 1 and match in err[0], err
        assert not (tmp_path / "out.txt").exists()


def test_sample_command_output_to_a_missing_folder(model, tmp_path, capsys):
    _, path = model
    assert sample_main([str(path), "--output", str(tmp_path / "no" / "out.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
