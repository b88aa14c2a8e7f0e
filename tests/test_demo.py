"""The demo's data path: the packaged data ingests cleanly and a rerun replaces its split."""

from __future__ import annotations

from synpref.demo import demo_data_path, split_pool
from synpref.ingest import ingest
from synpref.store import read_pool


def test_demo_split_is_replaced_not_appended_on_rerun(tmp_path):
    report = ingest([demo_data_path()], tmp_path / "pool", overwrite=True, progress=False)
    assert report["read"] == report["kept"] and report["quarantined"] == 0 and report["duplicates"] == 0
    first = split_pool(tmp_path / "pool", tmp_path / "train", tmp_path / "test")
    second = split_pool(tmp_path / "pool", tmp_path / "train", tmp_path / "test")
    assert first == second and sum(first) == report["kept"] and min(first) > 0
    train_ids = {r.id for r in read_pool(tmp_path / "train")}
    test_ids = {r.id for r in read_pool(tmp_path / "test")}
    assert len(train_ids) == first[0] and len(test_ids) == first[1] and not train_ids & test_ids
    assert not {r.prompt_id for r in read_pool(tmp_path / "train")} & {r.prompt_id for r in read_pool(tmp_path / "test")}
