"""The benchmark's plumbing (its figures are in the README, not asserted here)."""
import io
import json

from conftest import SMALL_TEXT
from fastrnn import bench


def test_bench_times_every_contender_against_the_reference():
    out = io.StringIO()
    # (the seed config's kernels, which other tests compile too)
    results = bench.run(SMALL_TEXT * 4, hiddens=(8,), dtypes=("float32",), rounds=1,
                        seconds=0.05, threads=(1,), out=out)
    names = [r["impl"] for r in results]
    assert names == ["numpy", "fastrnn float32"]
    assert all(r["it_s_median"] > 0 for r in results)
    assert json.loads(out.getvalue().splitlines()[-1])["results"] == results


def test_bench_rejects_bad_arguments(capsys):
    assert bench.main(["--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
