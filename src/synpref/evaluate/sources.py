"""Hub datasets for benchmarks without a local folder (their rows go through the format readers)."""

from __future__ import annotations

from collections.abc import Iterator


def hub_rows(dataset_id: str, split) -> Iterator[dict]:
    """Rows of a hub dataset (one split or several); needs ``datasets`` and a reachable hub."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise FileNotFoundError(f"loading {dataset_id} from the hub needs `pip install datasets`") from e
    splits = split if isinstance(split, (tuple, list)) else (split,)
    for s in splits:
        ds = datasets.load_dataset(dataset_id, split=s) if s else datasets.load_dataset(dataset_id)
        if isinstance(ds, dict):  # no split given: every split
            for part in ds.values():
                yield from part
        else:
            yield from ds
