"""A run's LLM access: its endpoints' clients on the run's cache, the judge panel, the calls it paid for.

Nothing starts until a step asks: a run whose LLM steps are all done (or disabled) opens no
connection and starts no server. Without endpoints in the config, the embedded SmolLM2 judge is
started (:class:`synpref.llm.JudgeServer`, which owns its lifecycle and pid file) and stopped by
:meth:`RunLLM.close`. Every answer is stored in ``RUN_DIR/llm_cache.sqlite`` as it arrives, so
a step redone after a kill pays only for the calls that were in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable


class RunLLM:
    def __init__(self, cfg, run_dir: Path, log: Callable[[str], None]):
        self.cfg = cfg
        self.dir = Path(run_dir)
        self.log = log
        self._server = None
        self._clients = None
        self._cache = None
        self.cache_path = self.dir / "llm_cache.sqlite"

    def clients(self):
        from ..llm import JudgeServer, LLMCache, LLMClient

        if self._clients is None:
            self._cache = LLMCache(self.cache_path)
            eps = list(self.cfg.endpoints)
            if not eps:
                self.log("no endpoint named: starting the embedded SmolLM2-135M judge (llama.cpp) on 127.0.0.1")
                self._server = JudgeServer(log_path=self.dir / "judge_server.log", pid_file=self.dir / "judge_server.pid").start()
                eps = [self._server.endpoint()]
            self._clients = [LLMClient(e, self._cache) for e in eps]
        return self._clients

    def panel_settings(self) -> dict:
        """The judge panel's settings from the config's ``judge`` section (the keyword arguments of :class:`JudgePanel`)."""
        j = self.cfg.judge
        return {"n_samples": j.n_samples, "seed": j.seed, "max_examples": j.max_examples, "max_chars": j.max_chars,
                "example_chars": j.example_chars, "params": j.params, "max_repairs": j.max_repairs}

    def panel(self):
        from .judges import JudgePanel

        return JudgePanel(self.clients(), **self.panel_settings())

    def usage(self) -> dict:
        """Calls, cache hits and tokens of this invocation, in all and per endpoint."""
        from ..llm import Usage

        total = Usage()
        per = {}
        for c in self._clients or []:
            total.add(c.usage)
            per[c.endpoint.label] = c.usage.to_dict()
        return {"total": total.to_dict(), "per_endpoint": per}

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._clients = None
