"""LLM access: an OpenAI-compatible client (async, bounded concurrency, retries, JSON
validation with repair, token accounting, on-disk cache), the one pairwise judge prompt,
and the local judge server.

Public API:

* :class:`LLMClient` - one endpoint/model; ``chat`` / ``chat_json`` (async); :func:`run_sync`
  calls a coroutine from sync code. :class:`LLMInvalidAnswer` (an :class:`LLMError`): the
  endpoint answered, but never with valid JSON.
* :class:`LLMCache` - the SQLite call cache shared by clients; ``totals()`` / ``read_totals(path)``
  give the paid calls and tokens it holds.
* :mod:`synpref.llm.pairwise` - the pairwise judge prompt, answer and candidate order that
  curation's judges and the evaluation judge share.
* :class:`JudgeServer` - starts/stops ``llama_cpp.server`` with SmolLM2-135M-Instruct on 127.0.0.1;
  :func:`stop_stale_server` stops one a killed run left behind.
* :class:`Endpoint` - what names an endpoint in a run config.
"""

from .cache import LLMCache, cache_key
from .client import Completion, Endpoint, LLMClient, LLMError, LLMInvalidAnswer, Usage, run_sync
from .server import JudgeServer, default_gguf_path, llama_cpp_available, stop_stale_server

__all__ = ["Completion", "Endpoint", "JudgeServer", "LLMCache", "LLMClient", "LLMError", "LLMInvalidAnswer", "Usage", "cache_key",
           "default_gguf_path", "llama_cpp_available", "run_sync", "stop_stale_server"]
