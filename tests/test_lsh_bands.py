"""prep's LSH band layout (``synpref.curate.prep.lsh_bands``): pinned in synpref, checked against
datasketch's choice where datasketch is installed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from test_cli_errors import assert_one_error_line, workdir  # noqa: F401 (a fixture)

from synpref.cli import main
from synpref.curate.prep import lsh_bands, lsh_ranges

THRESHOLDS = [round(0.5 + 0.05 * k, 2) for k in range(10)]  # 0.5 ... 0.95


@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_bands_are_datasketchs_choice(num_perm):
    """The same (b, r) as datasketch's MinHashLSH picks by the same criterion (weights 0.5 / 0.5)."""
    lsh = pytest.importorskip("datasketch.lsh")
    optimal = getattr(lsh, "_optimal_param", None)
    if optimal is None:
        pytest.skip("this datasketch has no _optimal_param to compare with")
    for threshold in THRESHOLDS:
        assert lsh_bands(threshold, num_perm) == tuple(optimal(threshold, num_perm, 0.5, 0.5)), threshold


def test_bands_are_pinned():
    """These are the bands near-duplicate decisions were made with (prep's default first): a change
    here changes decisions, as a change of MINHASH_SCHEME does."""
    assert lsh_bands(0.9, 64) == (3, 21)
    assert lsh_ranges(0.9, 64) == [(0, 21), (21, 42), (42, 63)]
    assert [lsh_bands(t, 128) for t in (0.5, 0.7, 0.8)] == PINNED_128


PINNED_128 = [(25, 5), (14, 9), (9, 13)]  # computed when the layout was pinned; datasketch 2.0.0 picks the same


def test_the_ends_of_the_threshold_range():
    """0: every pair a candidate is cheapest (one row per band); 1: one band of all rows."""
    assert lsh_bands(0.0, 64) == (64, 1)
    assert lsh_bands(1.0, 64) == (1, 64)


def test_a_threshold_out_of_range_is_refused(workdir):  # noqa: F811
    with pytest.raises(ValueError, match=r"near_dup_threshold 1.5: a Jaccard similarity is in \[0, 1\]"):
        lsh_bands(1.5, 64)
    for bad in ("1.5", "-0.1", "nan"):
        result = CliRunner().invoke(main, ["curate", "prep", "pool", "-o", "prepped", "--near-dup", "--near-dup-threshold", bad])
        assert_one_error_line(result, "--near-dup-threshold")
        assert not (workdir / "prepped").exists()


def test_near_dup_prep_imports_neither_datasketch_nor_scipy(tmp_path):
    """The bands are synpref's: a prep with --near-dup loads no datasketch (nor scipy, its ~0.5 s import)."""
    from test_engine_options import _run, _small_pool

    pool = _small_pool(tmp_path / "pool")
    code = ("import sys; from synpref.curate.prep import prep; "
            f"rep = prep({str(pool)!r}, {str(tmp_path / 'out')!r}, decontaminate=False, near_dup=True); "
            "print(rep['kept'], 'datasketch' in sys.modules, 'scipy' in sys.modules)")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["5", "False", "False"]
