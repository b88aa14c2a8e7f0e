"""``synpref curate run``: the whole pipeline as a resumable run directory.

Layout (one folder per step; ``state.json`` lists finished steps, written atomically)::

    RUN_DIR/config.yaml  state.json  summary.json  llm_cache.sqlite  judge_server.log
    prep/            clean pool + removed.jsonl + prep_report.json
    attributes/      attributes.jsonl (pair_id -> five-tuple or error)
    embed/           vectors.npy + ids.json
    stage1/iter-NN/  rm/ (trained RM), retrieved.json, labels.jsonl
    verification/    pending/batch-NNN.jsonl|csv, decisions/*.jsonl (the file contract)
    labels/          gold.json, silver.json (pair_id -> label, source, iteration)
    stage2/          gold_rm/, current_rm_fold*/ (or current_rm/), scores.jsonl, judgements.jsonl
    curated/ recycled/ gold/    output pools (records oriented by their final label)
    ledger/          one JSONL per step: every decision about a pair, with its reason

A step's outputs are written, then the step is marked done. ``kill -9`` at any
point and a rerun redoes only the unfinished step; LLM calls go through the SQLite
cache, so a redone step pays for nothing twice; human decisions live in files
that are never rewritten.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import yaml

from ..schema import Record
from ..store.pool import PoolWriter, read_pool
from .config import ConfigError, CurateConfig, changed_keys, load_config
from ..verification import UNDECIDABLE, decisions_dir
from .stages import needs_judge, stage2_decide
from .util import Ledger, RunState, atomic_write_json, atomic_write_text, flip, read_jsonl, sigmoid, stable_rand, write_jsonl


class WaitingForHumans(Exception):
    """Stage 1 exported a batch that has no decisions yet; rerun after they arrive."""


class Run:
    def __init__(self, cfg: CurateConfig, run_dir: Path, progress: bool = False, device: str | None = None):
        self.cfg = cfg
        self.device = device  # of every model the run loads (RM training and scoring, the embedder); None: synpref.model's default
        self.dir = run_dir
        self.state = RunState(run_dir)
        self.ledger = Ledger(run_dir)
        self.progress = progress
        self._server = None
        self._clients = None
        self._cache = None
        self.records: dict[str, Record] = {}
        self.order: list[str] = []
        self.gold_ids: list[str] = []
        self.attrs: dict[str, dict | None] = {}
        self.log_lines: list[str] = []

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        if self.progress:
            print(line, flush=True)
        with open(self.dir / "run.log", "a") as f:
            f.write(line + "\n")

    # -- LLM access -----------------------------------------------------------------
    def clients(self):
        from ..llm import JudgeServer, LLMCache, LLMClient

        if self._clients is None:
            self._cache = LLMCache(self.dir / "llm_cache.sqlite")
            eps = list(self.cfg.endpoints)
            if not eps:
                self.log("no endpoint named: starting the embedded SmolLM2-135M judge (llama.cpp) on 127.0.0.1")
                self._server = JudgeServer(log_path=self.dir / "judge_server.log", pid_file=self.dir / "judge_server.pid").start()
                eps = [self._server.endpoint()]
            self._clients = [LLMClient(e, self._cache) for e in eps]
        return self._clients

    def panel(self):
        from .judges import JudgePanel

        j = self.cfg.judge
        return JudgePanel(self.clients(), n_samples=j.n_samples, seed=j.seed, max_examples=j.max_examples,
                          max_chars=j.max_chars, example_chars=j.example_chars, params=j.params, max_repairs=j.max_repairs)

    def llm_usage(self) -> dict:
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
        if self._cache is not None:
            self._cache.close()

    # -- data -------------------------------------------------------------------------
    def load(self) -> None:
        pool = self.dir / "prep" if self.cfg.prep.enabled else Path(self.cfg.pool)
        self.records = {}
        for rec in read_pool(pool):
            self.records.setdefault(rec.id, rec)
        self.order = list(self.records)
        self.gold_ids = []
        if self.cfg.gold:
            for rec in read_pool(self.cfg.gold):
                if rec.id not in self.records:
                    self.records[rec.id] = rec
                self.gold_ids.append(rec.id)
        gset = set(self.gold_ids)
        self.order = [i for i in self.order if i not in gset]
        path = self.dir / "attributes" / "attributes.jsonl"
        self.attrs = {r["pair_id"]: r.get("attributes") for r in read_jsonl(path)}

    def oriented(self, pid: str, label: str) -> Record:
        rec = self.records[pid]
        return rec if label == "A" else flip(rec)

    def labels(self, kind: str) -> dict:
        p = self.dir / "labels" / f"{kind}.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def save_labels(self, kind: str, labels: dict) -> None:
        atomic_write_json(self.dir / "labels" / f"{kind}.json", labels)

    # -- RMs ----------------------------------------------------------------------------
    def train_rm(self, out: Path, labelled: dict[str, str], tag: str) -> Path:
        from dataclasses import asdict

        from ..train import TrainConfig, train

        if (out / "model" / "config.json").is_file() and (out / "summary.json").is_file():
            return out / "model"
        recs = [self.oriented(pid, lab) for pid, lab in sorted(labelled.items())]
        if not recs:
            raise ValueError(f"{tag}: no labelled pairs to train a reward model on")
        cfg = TrainConfig(**asdict(self.cfg.rm), data=[], run_dir=str(out), seed=self.cfg.seed, device=self.device)
        self.log(f"training {tag} on {len(recs)} pairs")
        train(cfg, records=recs)
        return out / "model"

    def probs(self, model_dir: Path, items: list[tuple[str, str]]) -> list[float]:
        """p(label) = sigmoid(r_preferred - r_other) for each (pair_id, label)."""
        from ..model import RewardModel

        if not items:
            return []
        rm = RewardModel.from_pretrained(model_dir, device=self.device)
        scores = rm.score_pairs([self.records[pid] for pid, _ in items], max_batch_tokens=0)
        return [sigmoid(r0 - r1) if lab == "A" else sigmoid(r1 - r0) for (pid, lab), (r0, r1) in zip(items, scores)]

    def out_of_fold_rms(self, d: Path, silver: dict, s2: dict):
        """Current RMs trained on the pool's own labels, cross-fitted: with k folds, fold f's
        pairs are scored by a model trained on the other folds, so no pair is judged by a model
        that memorised its (possibly wrong) label. k = 1 trains one model on everything."""
        pool = list(self.order)
        if s2.current_rm_pairs:
            random.Random(self.cfg.seed).shuffle(pool)
            pool = pool[: s2.current_rm_pairs]
        labelled = {p: silver.get(p, {}).get("label", "A") for p in pool}
        folds = s2.current_rm_folds

        def fold_of(pid: str) -> int:
            return int(stable_rand(self.cfg.seed, "stage2-fold", pid) * folds)

        if folds > 1 and len({fold_of(p) for p in labelled}) < folds:
            self.log(f"stage2: {len(labelled)} pairs cannot fill {folds} folds; one current RM trained on all of them")
            folds = 1
        if folds == 1:
            return {0: self.train_rm(d / "current_rm", labelled, "stage2 current RM")}, (lambda p: 0)
        rms = {f: self.train_rm(d / f"current_rm_fold{f}", {p: lab for p, lab in labelled.items() if fold_of(p) != f},
                                f"stage2 current RM for fold {f + 1}/{folds} (trained on the other folds)") for f in range(folds)}
        return rms, fold_of

    def fold_probs(self, rms: dict[int, Path], fold_of, items: list[tuple[str, str]]) -> list[float]:
        """``probs`` with each item scored by the model of its fold."""
        out: dict[int, float] = {}
        for fold, model_dir in rms.items():
            mine = [i for i, (pid, _) in enumerate(items) if fold_of(pid) == fold]
            out.update(zip(mine, self.probs(model_dir, [items[i] for i in mine])))
        return [out[i] for i in range(len(items))]

    # -- steps ----------------------------------------------------------------------------
    def step_prep(self) -> None:
        if self.state.done("prep") or not self.cfg.prep.enabled:
            return
        from .prep import prep

        p = self.cfg.prep
        rep = prep(self.cfg.pool, self.dir / "prep", data_dir=self.cfg.data_dir, extra_prompts=p.extra_prompts,
                   decontaminate=p.decontaminate, near_dup=p.near_dup, near_dup_threshold=p.near_dup_threshold, overwrite=True)
        self.ledger.write_step("prep", ({"pair_id": r["id"], "decision": "removed", "reason": r["reason"], "detail": r.get("detail")}
                                        for r in read_jsonl(self.dir / "prep" / "removed.jsonl")))
        self.state.mark("prep", {"kept": rep["kept"], "removed": rep["removed"]})
        self.log(f"prep: kept {rep['kept']}, removed {rep['removed']}")

    def step_attributes(self) -> None:
        if self.state.done("attributes") or not self.cfg.attributes.enabled:
            return
        from .attributes import annotate_attributes

        ids = self.gold_ids + self.order
        self.log(f"attributes for {len(ids)} pairs")
        out = annotate_attributes(self.clients()[0], [self.records[i] for i in ids], max_chars=self.cfg.attributes.max_chars)
        write_jsonl(self.dir / "attributes" / "attributes.jsonl", ({"pair_id": i, **o} for i, o in zip(ids, out)))
        self.attrs = {i: o.get("attributes") for i, o in zip(ids, out)}
        self.state.mark("attributes", {"annotated": sum(1 for o in out if o.get("attributes")), "failed": sum(1 for o in out if not o.get("attributes"))})

    def needs_embeddings(self) -> bool:
        return self.cfg.stage1.iterations > 0 or self.cfg.judge.max_examples > 0

    def step_embed(self) -> None:
        if self.state.done("embed") or not self.needs_embeddings():
            return
        import numpy as np

        from .retrieval import Embedder, pair_text

        ids = self.gold_ids + self.order
        embedder = Embedder(self.cfg.embedder, device=self.device)
        self.log(f"embedding {len(ids)} pairs with {self.cfg.embedder} on {embedder.model.device}")
        vec = embedder.encode([pair_text(self.records[i], self.attrs.get(i)) for i in ids])
        d = self.dir / "embed"
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "vectors.tmp.npy", vec)
        shutil.move(str(d / "vectors.tmp.npy"), str(d / "vectors.npy"))
        atomic_write_json(d / "ids.json", ids)
        self.state.mark("embed", {"n": len(ids)})

    def vectors(self):
        import numpy as np

        d = self.dir / "embed"
        ids = json.loads((d / "ids.json").read_text())
        return ids, np.load(d / "vectors.npy")

    def examples_for(self, pids: list[str], gold: dict) -> dict[str, list[dict]]:
        """Up to ``max_examples`` nearest human-verified pairs for each pair (by embedding)."""
        m = self.cfg.judge.max_examples
        if m <= 0 or not gold or not (self.dir / "embed" / "ids.json").is_file():
            return {p: [] for p in pids}
        from .retrieval import NeighbourIndex

        ids, vec = self.vectors()
        row = {i: n for n, i in enumerate(ids)}
        gids = [g for g in gold if g in row]
        index = NeighbourIndex(gids, vec[[row[g] for g in gids]])
        hits = index.search(vec[[row[p] for p in pids]], m)
        return {p: [{"record": self.records[g], "attributes": self.attrs.get(g), "label": gold[g]["label"]} for g, _ in h]
                for p, h in zip(pids, hits)}

    def judge(self, pid_labels: list[str], gold: dict) -> dict[str, dict]:
        if not pid_labels:
            return {}
        ex = self.examples_for(pid_labels, gold)
        items = [{"record": self.records[p], "pair_id": p, "attributes": self.attrs.get(p), "examples": ex[p]} for p in pid_labels]
        self.log(f"judging {len(items)} pairs")
        return {p: j.to_dict() for p, j in zip(pid_labels, self.panel().judge_many(items))}

    # -- stage 1 ------------------------------------------------------------------------------
    def human_round(self, step: str, items: list[dict]) -> dict[str, str]:
        """Export a batch (once), then return decisions for it; raises WaitingForHumans when incomplete."""
        from .verification import export_verification, import_verification, next_batch_name, read_pending

        info = self.state.get(step + "/exported")
        if info is None:
            name = self.state.get(step + "/exporting")  # the batch name is fixed before writing: a rerun rewrites it
            if name is None:
                name = next_batch_name(self.dir)
                self.state.mark(step + "/exporting", name)
            path = export_verification(self.dir, items, batch=name)
            info = {"batch": path.stem, "n": len(items)}
            if self.cfg.stage1.human == "original_labels":  # the pool's own labels play the humans
                rows = [{"pair_id": it["pair_id"], "decision": "A", "annotator": "original-labels",
                         "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "note": None} for it in items]
                write_jsonl(decisions_dir(self.dir) / f"{path.stem}-original-labels.jsonl", rows)
            self.state.mark(step + "/exported", info)
        pending = [r["pair_id"] for r in read_pending(self.dir, info["batch"])]
        ver = import_verification(self.dir)
        if ver["invalid"]:  # a label may sit on an unreadable line: never decide without it
            raise WaitingForHumans(f"{ver['invalid_rows']} decision line(s) could not be imported, fix or remove them, then rerun: "
                                   + "; ".join(b["message"] for b in ver["invalid"]))
        decisions = ver["decisions"]
        missing = [p for p in pending if p not in decisions]
        if missing:
            raise WaitingForHumans(f"{len(missing)} of {len(pending)} pairs of {info['batch']} have no decision yet: put decision files in "
                                   f"{decisions_dir(self.dir)} (or run `synpref curate import-verification`), then rerun")
        return {p: decisions[p]["decision"] for p in pending}

    def stage1(self) -> None:
        s1 = self.cfg.stage1
        if s1.iterations <= 0:
            return
        gold = self.labels("gold")
        silver = self.labels("silver")
        rng = random.Random(self.cfg.seed)
        if not self.state.done("stage1/init"):
            gold = {g: {"label": "A", "source": "human", "iteration": -1} for g in self.gold_ids}
            pool = list(self.order)
            rng.shuffle(pool)
            silver = {p: {"label": "A", "source": "dataset", "iteration": -1} for p in pool[: s1.silver_init]}
            self.save_labels("gold", gold)
            self.save_labels("silver", silver)
            self.state.mark("stage1/init", {"gold": len(gold), "silver": len(silver)})
        if not gold:  # a seed gold set from the humans first
            seeds = [p for p in self.order if p not in silver][: s1.seed_gold]
            dec = self.human_round("stage1/seed", [{"record": self.records[p], "pair_id": p, "attributes": self.attrs.get(p)} for p in seeds])
            gold = {p: {"label": d, "source": "human", "iteration": -1} for p, d in dec.items() if d in ("A", "B")}
            self.state.set("rejected", sorted(set(self.state.data.get("rejected", [])) | {p for p, d in dec.items() if d not in ("A", "B")}))
            self.save_labels("gold", gold)
            self.ledger.write_step("stage1__seed", ({"pair_id": p, "decision": "gold" if d in "AB" else "discarded",
                                                      "reason": f"human decision {d}", "label": d} for p, d in dec.items()))
        for it in range(s1.iterations):
            tag = f"stage1/iter-{it:02d}"
            d = self.dir / "stage1" / f"iter-{it:02d}"
            if self.state.done(tag + "/merge"):
                continue
            # train on silver, select by gold accuracy
            if not self.state.done(tag + "/train"):
                model = self.train_rm(d / "rm", {p: v["label"] for p, v in silver.items()}, f"{tag} RM")
                gitems = [(p, v["label"]) for p, v in gold.items()]
                ps = self.probs(model, gitems)
                acc = sum(p > 0.5 for p in ps) / max(1, len(ps))
                best = self.state.data.get("best_rm")
                if best is None or acc >= best["gold_accuracy"]:
                    best = {"path": str(model), "gold_accuracy": acc, "iteration": it}
                    self.state.set("best_rm", best)
                write_jsonl(d / "gold_scores.jsonl", ({"pair_id": p, "p": q} for (p, _), q in zip(gitems, ps)))
                self.state.mark(tag + "/train", {"gold_accuracy": acc, "silver": len(silver), "gold": len(gold)})
                self.log(f"{tag}: RM gold accuracy {acc:.3f}")
            # retrieve neighbours of gold pairs from the unverified pool
            if not self.state.done(tag + "/retrieve"):
                from .retrieval import NeighbourIndex, k_for

                scores = {r["pair_id"]: r["p"] for r in read_jsonl(d / "gold_scores.jsonl")}
                ids, vec = self.vectors()
                row = {i: n for n, i in enumerate(ids)}
                used = set(gold) | {p for p, v in silver.items() if v["source"] != "dataset"} | set(self.state.data.get("rejected", []))
                cand = [p for p in self.order if p not in used and p in row]
                index = NeighbourIndex(cand, vec[[row[p] for p in cand]])
                wanted = [(g, k_for(scores[g], s1.k_max)) for g in gold if g in row and g in scores]
                picked: dict[str, None] = {}
                for (g, k), hits in zip(wanted, index.search(vec[[row[g] for g, _ in wanted]], s1.k_max) if wanted else []):
                    for pid, _ in hits[:k]:
                        picked.setdefault(pid)
                atomic_write_json(d / "retrieved.json", list(picked))
                self.state.mark(tag + "/retrieve", {"retrieved": len(picked)})
            retrieved = json.loads((d / "retrieved.json").read_text())
            # label with the judges
            if not self.state.done(tag + "/label"):
                js = self.judge(retrieved, gold)
                write_jsonl(d / "labels.jsonl", ({"pair_id": p, **j} for p, j in js.items()))
                self.state.mark(tag + "/label", {"labelled": sum(1 for j in js.values() if j["label"])})
            js = {r["pair_id"]: r for r in read_jsonl(d / "labels.jsonl")}
            # a budgeted sample goes to the humans (protocol priority order)
            from .attributes import priority_key

            labelled = [p for p in retrieved if js.get(p, {}).get("label")]
            ranked = sorted(labelled, key=lambda p: (priority_key(self.attrs.get(p)), stable_rand("verify", self.cfg.seed, p)))
            to_verify = ranked[: s1.verify_budget]
            items = [{"record": self.records[p], "pair_id": p, "attributes": self.attrs.get(p),
                      "llm_precheck": {"label": js[p]["label"], "confidence": js[p]["confidence"]}} for p in to_verify]
            dec = self.human_round(tag, items) if items else {}
            # merge: verified -> gold, LLM-labelled -> silver
            entries = []
            rejected = list(self.state.data.get("rejected", []))
            for p in retrieved:
                j = js.get(p, {})
                if p in dec:
                    if dec[p] in ("A", "B"):
                        gold[p] = {"label": dec[p], "source": "human", "iteration": it}
                        silver.pop(p, None)
                        entries.append({"pair_id": p, "decision": "gold", "label": dec[p], "reason": "human-verified",
                                        "judge": j.get("label"), "confidence": j.get("confidence")})
                    else:
                        silver.pop(p, None)
                        rejected.append(p)
                        entries.append({"pair_id": p, "decision": "discarded", "reason": "human: cannot determine" if dec[p] == UNDECIDABLE
                                        else "humans disagree: no strict majority"})
                elif j.get("label"):
                    silver[p] = {"label": j["label"], "source": "llm", "iteration": it, "confidence": j["confidence"]}
                    entries.append({"pair_id": p, "decision": "silver", "label": j["label"], "reason": "LLM judges' vote",
                                    "confidence": j["confidence"], "votes": j.get("votes")})
                else:
                    entries.append({"pair_id": p, "decision": "unlabelled", "reason": "judges undecided"})
            self.save_labels("gold", gold)
            self.save_labels("silver", silver)
            self.state.set("rejected", rejected)
            self.ledger.write_step(f"stage1__iter-{it:02d}", entries)
            self.state.mark(tag + "/merge", {"gold": len(gold), "silver": len(silver), "verified": len(dec)})

    # -- stage 2 --------------------------------------------------------------------------------
    def stage2(self) -> None:
        s2 = self.cfg.stage2
        if not s2.enabled or self.state.done("stage2/decide"):
            return
        d = self.dir / "stage2"
        gold = self.labels("gold") or {g: {"label": "A", "source": "human", "iteration": -1} for g in self.gold_ids}
        silver = self.labels("silver")
        gold_rm = self.train_rm(d / "gold_rm", {p: v["label"] for p, v in gold.items()}, "stage2 gold RM")
        best = self.state.data.get("best_rm")
        if best:
            current_rms, fold_of = {0: Path(best["path"])}, (lambda p: 0)
        else:  # no Stage 1: the current RM is trained on the pool's labels as given (silver)
            current_rms, fold_of = self.out_of_fold_rms(d, silver, s2)
        rejected = set(self.state.data.get("rejected", []))  # humans said "cannot determine": out for good
        targets = [p for p in self.order if p not in gold and p not in rejected]
        labels = {p: silver.get(p, {}).get("label", "A") for p in targets}
        if not self.state.done("stage2/score"):
            items = [(p, labels[p]) for p in targets]
            self.log(f"stage2: scoring {len(items)} pairs with the current and gold RMs")
            pc = self.fold_probs(current_rms, fold_of, items)
            pg = self.probs(gold_rm, items)
            write_jsonl(d / "scores.jsonl", ({"pair_id": p, "label": lab, "p_current": a, "p_gold": b} for (p, lab), a, b in zip(items, pc, pg)))
            self.state.mark("stage2/score", {"n": len(items)})
        scores = {r["pair_id"]: r for r in read_jsonl(d / "scores.jsonl")}
        band = s2.band
        if not self.state.done("stage2/judge"):
            ask = [p for p in targets if needs_judge(scores[p]["p_current"], band)]
            js = self.judge(ask, gold)
            write_jsonl(d / "judgements.jsonl", ({"pair_id": p, **j} for p, j in js.items()))
            self.state.mark("stage2/judge", {"judged": len(ask)})
        js = {r["pair_id"]: r for r in read_jsonl(d / "judgements.jsonl")}
        # decide and write the outputs
        entries, counts = [], Counter()
        for out in ("curated", "recycled", "gold"):
            shutil.rmtree(self.dir / out, ignore_errors=True)
        with PoolWriter(self.dir / "curated") as cur_w, PoolWriter(self.dir / "recycled") as rec_w, PoolWriter(self.dir / "gold") as gold_w:
            for p, v in gold.items():
                info = {"decision": "gold", "reason": "human-verified" + (" (gold pool of the config)" if v.get("iteration") == -1 else ""),
                        "label": v["label"], "final_label": v["label"]}
                gold_w.write(self._out(p, v["label"], "human", info))
                cur_w.write(self._out(p, v["label"], "human", info))
                entries.append({"pair_id": p, **info, "output_id": self.oriented(p, v["label"]).id})
            for p in targets:
                s = scores[p]
                j = js.get(p)
                dec, reason, final = stage2_decide(s["label"], s["p_current"], s["p_gold"], j["label"] if j else None, band=band)
                counts[dec] += 1
                info = {"decision": dec, "reason": reason, "label": s["label"], "final_label": final, "p_current": round(s["p_current"], 4),
                        "p_gold": round(s["p_gold"], 4), "judge": ({"label": j["label"], "confidence": j["confidence"], "votes": j["votes"]} if j else None)}
                src = "llm-judge" if (j and j["label"] == final and final != "A") else ("llm" if silver.get(p, {}).get("source") == "llm" else "dataset")
                if dec == "keep":
                    cur_w.write(self._out(p, final, src, info))
                elif dec == "flip":
                    r = self._out(p, final, "llm-judge" if (j and j["label"] == final) else "recycled-flip", info)
                    rec_w.write(r)
                    if s2.recycle_flips:
                        cur_w.write(r)
                entries.append({"pair_id": p, **info, "output_id": self.oriented(p, final).id})
        self.ledger.write_step("stage2", entries)
        self.state.mark("stage2/decide", dict(counts))

    def _out(self, pid: str, label: str, source: str, info: dict) -> Record:
        rec = self.oriented(pid, label)
        meta = {**rec.meta, "curate": {"source_id": pid, **info}}
        if self.attrs.get(pid):
            meta["attributes"] = self.attrs[pid]
        return Record(rec.context, rec.candidates, "pair", margin=rec.margin, weight=rec.weight,
                      provenance=rec.provenance.__class__(rec.provenance.source, rec.provenance.row, rec.provenance.format, source), meta=meta)

    # -- summary ----------------------------------------------------------------------------------
    def summary(self, status: str) -> dict:
        steps = self.state.data["steps"]
        usage = self.llm_usage()
        from ..llm import LLMCache

        cum = LLMCache.read_totals(self.dir / "llm_cache.sqlite")
        decisions = Counter()
        for e in self.ledger.entries():
            decisions[f"{e['step']}:{e['decision']}"] += 1
        from .verification import import_verification

        ver = import_verification(self.dir)
        summ = {
            "status": status,
            "run_dir": str(self.dir),
            "pairs_per_decision": dict(sorted(decisions.items())),
            "stage2": steps.get("stage2/decide"),
            "llm_this_invocation": usage,
            "llm_cumulative": cum,
            "human_decisions": {"pairs": len(ver["decisions"]), "counts": ver["counts"], "files": len(ver["files"])},
            "rm_gold_accuracy_per_iteration": {k.split("/")[1]: v["gold_accuracy"] for k, v in steps.items() if k.endswith("/train")},
            "best_rm": self.state.data.get("best_rm"),
            "prep": steps.get("prep"),
        }
        atomic_write_json(self.dir / "summary.json", summ)
        return summ


def run_curation(config, run_dir, *, progress: bool = False, device: str | None = None) -> dict:
    """Run (or resume) a curation; return the summary (also ``RUN_DIR/summary.json``).

    ``config``: a YAML path, a dict or a :class:`CurateConfig` (:class:`ConfigError` when it is not
    valid). ``device``: where the run's models train, score and embed (``cuda``, ``cuda:1``, ``cpu``);
    None: :func:`synpref.model.default_device`. The device is not part of the config, so
    a run can resume on another machine.
    """
    run_dir = Path(run_dir)
    cfg = load_config(config)
    saved = run_dir / "config.yaml"
    if saved.is_file():
        try:
            old = load_config(saved)
        except ConfigError as e:
            raise ConfigError(f"{run_dir} holds a run whose saved config no longer loads ({e}); use another RUN_DIR") from None
        changed = changed_keys(old, cfg)
        if changed:
            raise ConfigError(f"{run_dir} holds a run with a different config ({', '.join(changed)}); use another RUN_DIR")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, "# The complete config of this run (every key; `synpref curate config` explains each).\n"
                          + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    run = Run(cfg, run_dir, progress, device)
    status = "done"
    try:
        run.step_prep()
        run.load()
        run.step_attributes()
        run.step_embed()
        try:
            run.stage1()
            run.stage2()
        except WaitingForHumans as e:
            status = f"waiting for human decisions: {e}"
            run.log(status)
        return run.summary(status)
    finally:
        run.close()


def why(run_dir, pair_id: str) -> dict:
    """Everything the run recorded about a pair (by its pool id or its output id): the final state and its history."""
    run_dir = Path(run_dir)
    hist = [e for e in Ledger(run_dir).entries() if e.get("pair_id") == pair_id or e.get("output_id") == pair_id]
    from .verification import import_verification

    human = import_verification(run_dir)["decisions"].get(pair_id)
    if not hist and human is None:
        return {"pair_id": pair_id, "status": "unknown", "explanation": "no step of this run recorded anything about this id"}
    last = hist[-1] if hist else {}
    final = last.get("decision", "human-decided")
    recycle = False
    if (run_dir / "config.yaml").is_file():
        recycle = bool((yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("stage2", {}).get("recycle_flips"))
    status = {"keep": "in", "gold": "in", "flip": "in (label flipped)" if recycle else "out (flipped copy in recycled/)",
              "removed": "out", "discard": "out", "discarded": "out", "silver": "pending (LLM-labelled silver)",
              "unlabelled": "pending"}.get(final, final)
    return {"pair_id": pair_id, "status": status, "final_decision": final, "reason": last.get("reason"), "history": hist, "human": human}
