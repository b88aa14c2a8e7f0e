"""The reward models of a curation run, in one place: training, p(label), cross-fitted current RMs.

* :func:`train_rm` trains one RM (``synpref.train.train`` with the config's ``rm`` settings) on
  labelled pairs in its own folder; a folder that already holds a finished model is not trained
  again, so a resumed run redoes at most the model that was training when it was killed.
* :class:`RMScorer` gives ``p(label) = sigmoid(r_preferred - r_other)`` for pairs and their labels.
* Current RMs without Stage 1 are cross-fitted (:func:`train_cross_fitted`): with k folds (a
  seeded hash of the pair id, :func:`fold_of`), fold f's pairs are scored by a model trained on
  the other folds, so no pair is judged by a model that memorised its (possibly wrong) label;
  :class:`CurrentRMs` names the models and :class:`CrossFitScorer` scores each pair with its fold's.

The trainer holds its training set in memory (encoded token ids): a Stage 2 run without Stage 1
bounds it with ``stage2.current_rm_pairs``. Scoring streams: one batch of records at a time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..schema import Record
from .util import oriented, sigmoid, stable_rand


@dataclass
class RMSettings:
    """What every RM of the run shares: the config's ``rm`` section, the run's seed and device, its log."""

    rm: object  # synpref.curate.config.RMConfig
    seed: int
    device: str | None
    log: Callable[[str], None]


def model_dir(out: Path) -> Path:
    return Path(out) / "model"


def is_trained(out: Path) -> bool:
    return (model_dir(out) / "config.json").is_file() and (Path(out) / "summary.json").is_file()


def train_rm(out: Path, labelled: Iterable[tuple[Record, str]], settings: RMSettings, tag: str) -> Path:
    """Train an RM on ``(record, label)`` pairs (label "A": candidate 0 preferred) in ``out``; its model folder."""
    from ..train import TrainConfig, train

    out = Path(out)
    if is_trained(out):
        return model_dir(out)
    recs = [oriented(rec, label) for rec, label in labelled]
    if not recs:
        raise ValueError(f"{tag}: no labelled pairs to train a reward model on")
    cfg = TrainConfig(**asdict(settings.rm), data=[], run_dir=str(out), seed=settings.seed, device=settings.device)
    settings.log(f"training {tag} on {len(recs)} pairs")
    train(cfg, records=recs)
    return model_dir(out)


def label_prob(r0: float, r1: float, label: str) -> float:
    """p(label) from the rewards of candidate 0 and candidate 1."""
    return sigmoid(r0 - r1) if label == "A" else sigmoid(r1 - r0)


class PairEncodings:
    """The token ids of a batch's pairs, each pair encoded once per tokenizer and text policy: the current
    and gold RMs of a run (trained from one base model) share them, and a pair's two candidates share
    their context's tokenization. Held for one batch only."""

    def __init__(self, records: list[Record]):
        self.records = records
        self._by_key: dict[str, dict[int, tuple]] = {}

    def of(self, rm, rows: list[int]) -> list:
        """The encodings of candidates 0 and 1 of each of ``rows`` (indices into the records), flat, under ``rm``."""
        done = self._by_key.setdefault(rm.encoding_key, {})
        todo = [i for i in rows if i not in done]
        if todo:
            convs = {(i, j): self.records[i].conversation(j) for i in todo for j in (0, 1)}
            memo: dict = {}  # the texts' ids, tokenized in one call; then each pair is built from them
            rm.tokenize_ahead(list(convs.values()), memo)
            for i in todo:
                done[i] = tuple(rm.encode(convs[i, j], item_id=f"{self.records[i].id} candidate {j}", memo=memo) for j in (0, 1))
        return [e for i in rows for e in done[i]]


class RMScorer:
    """One trained RM on ``device`` (None: synpref.model's default), loaded at its first use."""

    def __init__(self, model_dir: str | Path, device: str | None = None):
        self.model_dir = Path(model_dir)
        self.device = device
        self._rm = None

    def probs(self, records: list[Record], labels: list[str], encodings: PairEncodings | None = None,
              rows: list[int] | None = None) -> list[float]:
        """p(label) for each record and its label (``encodings``: the batch's, shared with its other RMs; ``rows``:
        which of its records ``records`` are, all of them by default)."""
        if not records:
            return []
        if self._rm is None:
            from ..model import RewardModel

            self._rm = RewardModel.from_pretrained(self.model_dir, device=self.device)
        if encodings is None:
            encodings = PairEncodings(records)
        if rows is None:
            rows = list(range(len(records)))
        flat = self._rm.score_encoded(encodings.of(self._rm, rows), max_batch_tokens=0)
        return [label_prob(r0, r1, lab) for lab, r0, r1 in zip(labels, flat[0::2], flat[1::2])]


# -- current RMs ----------------------------------------------------------------------------------
def fold_of(seed: int, folds: int, pair_id: str) -> int:
    return int(stable_rand(seed, "stage2-fold", pair_id) * folds)


@dataclass
class CurrentRMs:
    """The current RM(s) of Stage 2: ``models[f]`` scores the pairs of fold f (one fold: one model for all)."""

    models: dict[int, str]
    folds: int
    seed: int

    def fold(self, pair_id: str) -> int:
        return 0 if self.folds == 1 else fold_of(self.seed, self.folds, pair_id)

    def to_dict(self) -> dict:
        return {"models": {str(f): p for f, p in self.models.items()}, "folds": self.folds, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "CurrentRMs":
        return cls({int(f): p for f, p in d["models"].items()}, d["folds"], d["seed"])


class CrossFitScorer:
    """p(label) of each pair by the current RM of its fold."""

    def __init__(self, current: CurrentRMs, device: str | None = None):
        self.current = current
        self.scorers = {f: RMScorer(p, device) for f, p in current.models.items()}

    def probs(self, ids: list[str], records: list[Record], labels: list[str], encodings: PairEncodings | None = None) -> list[float]:
        encodings = encodings if encodings is not None else PairEncodings(records)
        folds = [self.current.fold(pid) for pid in ids]
        out: dict[int, float] = {}
        for fold, scorer in self.scorers.items():
            mine = [i for i, f in enumerate(folds) if f == fold]
            out.update(zip(mine, scorer.probs([records[i] for i in mine], [labels[i] for i in mine], encodings, mine)))
        return [out[i] for i in range(len(ids))]


def train_cross_fitted(folder: Path, labelled: Callable[[], Iterator[tuple[str, Record, str]]], settings: RMSettings,
                       folds: int, *, name: str = "current_rm", tag: str = "stage2 current RM") -> CurrentRMs:
    """Current RMs on ``labelled()`` = ``(pair_id, record, label)`` (called once per model: a stream, not a list).

    With ``folds`` > 1, model f is trained on the pairs of the other folds (``{name}_fold{f}``);
    when the pairs do not fill every fold, or with one fold, one model is trained on all of them
    (``{name}``). ``synpref curate plan`` cross-fits its out-of-fold gold RMs with it too
    (``name="gold_rm"``), after checking that the gold pairs fill every fold.
    """
    if folds > 1:
        seen: set[int] = set()
        for pid, _rec, _label in labelled():
            seen.add(fold_of(settings.seed, folds, pid))
            if len(seen) == folds:
                break
        if len(seen) < folds:
            settings.log(f"{tag}: the pairs cannot fill {folds} folds; one model trained on all of them")
            folds = 1
    if folds == 1:
        path = train_rm(folder / name, ((rec, lab) for _pid, rec, lab in labelled()), settings, tag)
        return CurrentRMs({0: str(path)}, 1, settings.seed)
    models = {}
    for f in range(folds):
        mine = ((rec, lab) for pid, rec, lab in labelled() if fold_of(settings.seed, folds, pid) != f)
        models[f] = str(train_rm(folder / f"{name}_fold{f}", mine, settings,
                                 f"{tag} for fold {f + 1}/{folds} (trained on the other folds)"))
    return CurrentRMs(models, folds, settings.seed)
