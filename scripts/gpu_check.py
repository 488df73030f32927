"""The GPU check's driver (scripts/gpu-check.sh runs it): a few GRPO steps per configuration, each in
its own process, then a table and a verdict.

    python scripts/gpu_check.py all OUT_DIR       # the whole matrix (see docs/gpu.md)
    python scripts/gpu_check.py run SPEC.json     # one configuration (what ``all`` launches)

Models are built on disk (no hub): Llama- and Qwen2-architecture causal LMs of about 20M
parameters over the demo's character tokenizer. The reward is the share of the digit 7 in a
completion, which a policy learns within a few steps, so the reward trend is a real signal.
Asserted per run: it finished, every loss is finite, reward rose from the first steps to the last
(single-process runs), and the masks of every backend agree for the same ids.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ARCHS = ("llama", "qwen2")


def build_models(root: Path) -> dict[str, Path]:
    """A Llama and a Qwen2 model (bf16 checkpoints, as real ones ship) with the demo's data."""
    import torch
    import transformers as tf

    from grpo_plugins.grpo import tiny

    out = {}
    data = tiny.build(root / "data", n_train=512, n_eval=32, n_sft=8, hidden_size=16, layers=1, heads=1)
    tok = tiny.build_tokenizer()
    small = os.environ.get("GPU_CHECK_SMALL") == "1"  # a CPU smoke run of this script itself
    common = dict(vocab_size=len(tok), hidden_size=64 if small else 512, intermediate_size=192 if small else 1536,
                  num_hidden_layers=2 if small else 6,
                  num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    for arch in ARCHS:
        d = root / arch
        if not (d / "config.json").exists():
            torch.manual_seed(0)
            cls, cfg = (tf.LlamaForCausalLM, tf.LlamaConfig) if arch == "llama" else (tf.Qwen2ForCausalLM, tf.Qwen2Config)
            model = cls(cfg(**common)).to(torch.bfloat16)
            model.save_pretrained(d)
            tok.save_pretrained(d)
        out[arch] = d
    out["data"] = data
    return out


def matrix(have_vllm: bool, gpus: int, have_deepspeed: bool) -> list[dict]:
    """Every configuration the check runs (name, arch, backend, lora, gc, launch)."""
    runs = []
    for arch in ARCHS:
        for lora in (False, True):
            for gc in (False, True):
                runs.append(dict(arch=arch, backend="sample", lora=lora, gc=gc))
        runs.append(dict(arch=arch, backend="generate", lora=False, gc=False))
        runs.append(dict(arch=arch, backend="generate", lora=True, gc=True))
        if have_vllm:
            runs.append(dict(arch=arch, backend="vllm", lora=arch == "qwen2", gc=False))
    if gpus >= 2:
        runs.append(dict(arch="llama", backend="sample", lora=False, gc=False, launch="ddp"))
        runs.append(dict(arch="qwen2", backend="sample", lora=False, gc=True, launch="fsdp2"))
        if have_deepspeed:
            runs.append(dict(arch="llama", backend="sample", lora=False, gc=False, launch="zero3"))
        if have_vllm:
            runs.append(dict(arch="llama", backend="vllm", lora=False, gc=False, launch="fsdp2"))
    for r in runs:
        r.setdefault("launch", "single")
        r["name"] = "-".join([r["arch"], r["backend"], "lora" if r["lora"] else "full", "gc" if r["gc"] else "nogc",
                              r["launch"]])
    return runs


def train_config(spec: dict, paths: dict, run_dir: Path) -> dict:
    """The TrainConfig dict of one run (the same settings as the TRL comparison)."""
    return {
        "model": {"name_or_path": str(paths[spec["arch"]]), "gradient_checkpointing": spec["gc"],
                  "lora": {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
                  if spec["lora"] else None},
        "data": {"train": str(paths["data"] / "train.jsonl")},
        "rollout": {"backend": spec["backend"], "num_generations": 8, "max_new_tokens": 48, "temperature": 1.0,
                    "vllm": {"gpu_memory_utilization": 0.25}},
        "train": {"steps": spec.get("steps", 8), "prompts_per_step": 8, "learning_rate": 3e-4 if spec["lora"] else 5e-5,
                  "beta": 0.0, "bf16": "auto", "seed": 0},  # auto = bf16 autocast on CUDA
        "rewards": [{"name": "sevens"}],
        "log": {"run_dir": str(run_dir), "tensorboard": False, "progress": False, "samples": 0},
        "checkpoint": {"every": 0},
    }


def run_one(spec_file: str) -> None:
    """Train one configuration; write its per-step numbers and the mask agreement to spec['out']."""
    import torch

    from grpo_plugins import PluginManager, Reward, RewardResult, hookimpl
    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.generation import completion_mask, stop_ids
    from grpo_plugins.grpo.trainer import GRPOTrainer

    spec = json.loads(Path(spec_file).read_text())

    class Sevens(Reward):
        """Share of the digit 7 in the completion."""

        name = "sevens"

        def score(self, samples):
            return [RewardResult(s.text.count("7") / max(len(s.text), 1)) for s in samples]

    class Plugin:
        @hookimpl
        def register_rewards(self, register):
            register(Sevens)

    manager = PluginManager(load_entrypoints=False)
    manager.register(Plugin(), name="gpu_check")
    cfg = TrainConfig.model_validate(spec["config"])
    trainer = GRPOTrainer(cfg, manager)
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    steps = []
    mask_ok = True
    real_generate = trainer.generate

    def checked(rows, **kw):  # every backend's mask must equal the id rule's for the same ids
        nonlocal mask_ok
        batch = real_generate(rows, **kw)
        again, trunc = completion_mask(batch.completion_ids, stop_ids(trainer.tokenizer, trainer.policy))
        mask_ok &= bool(torch.equal(again, batch.mask) and torch.equal(trunc, batch.truncated))
        return batch

    trainer.generate = checked
    for _ in range(cfg.train.steps):
        sync()
        t0 = time.perf_counter()
        m = trainer.train_step()
        sync()
        steps.append({"loss": m["loss"], "reward": m["reward"], "time": time.perf_counter() - t0,
                      "gen_tokens_per_s": m["tokens_per_second"]})
    result = {"name": spec["name"], "rank": trainer.rank, "steps": steps, "mask_ok": mask_ok,
              "peak_mem_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else float("nan")}
    if trainer.world > 1:
        trainer.save()  # the engine's state-dict path, for real
        result["checkpoint"] = True
    Path(spec["out"]).with_suffix(f".rank{trainer.rank}.json").write_text(json.dumps(result))


def run_trl(spec_file: str) -> None:
    """TRL's GRPOTrainer on the same model, data, reward and settings: step time and peak memory."""
    import torch
    from datasets import load_dataset
    from trl import GRPOConfig, GRPOTrainer

    spec = json.loads(Path(spec_file).read_text())
    c = spec["config"]
    ds = load_dataset("json", data_files=c["data"]["train"], split="train")

    def sevens(completions, **kw):
        return [t.count("7") / max(len(t), 1) for t in completions]

    args = GRPOConfig(output_dir=spec["out"] + ".trl", per_device_train_batch_size=64, num_generations=8,
                      max_completion_length=48, learning_rate=c["train"]["learning_rate"], beta=0.0, bf16=True,
                      max_steps=c["train"]["steps"], logging_steps=1, report_to=[], save_strategy="no",
                      use_vllm=spec["backend"] == "vllm", vllm_mode="colocate", vllm_gpu_memory_utilization=0.25,
                      gradient_checkpointing=spec["gc"], seed=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=c["model"]["name_or_path"], reward_funcs=sevens, args=args, train_dataset=ds)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    Path(spec["out"]).with_suffix(".trl.json").write_text(json.dumps({
        "name": spec["name"] + "-TRL", "step_time": total / max(len(logs), 1),
        "loss": [h["loss"] for h in logs], "reward": [h.get("reward") for h in logs],
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2 ** 30}))


def launch(spec: dict, out: Path, repo: Path) -> tuple[int, str]:
    """Run one spec in its own process(es); (exit code, tail of its output)."""
    spec_file = out / f"{spec['name']}.spec.json"
    spec_file.write_text(json.dumps(spec))
    me = str(Path(__file__).resolve())
    if spec["launch"] == "single":
        cmd = [sys.executable, me, "run", str(spec_file)]
    else:
        cfg = {"ddp": [], "fsdp2": ["--config_file", str(repo / "configs/accelerate-fsdp2.yaml")],
               "zero3": ["--config_file", str(repo / "configs/accelerate-zero3.yaml")]}[spec["launch"]]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *cfg, "--num_processes", "2", me, "run",
               str(spec_file)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return p.returncode, (p.stdout + p.stderr)[-1500:]


def check_all(out_dir: str) -> int:
    """Run the matrix and the TRL comparison; print the table; 0 when every assertion held."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parent.parent
    paths = build_models(out / "models")
    try:
        import vllm  # noqa: F401
        have_vllm = True
    except ImportError:
        have_vllm = False
    try:
        import deepspeed  # noqa: F401
        have_ds = True
    except ImportError:
        have_ds = False
    gpus = torch.cuda.device_count()
    print(f"GPUs: {gpus} ({torch.cuda.get_device_name(0)}); vllm: {have_vllm}; deepspeed: {have_ds}", flush=True)
    if gpus < 2:
        print("two-process runs (DDP, FSDP2, ZeRO-3) skipped: they need 2 GPUs", flush=True)
    failures = []
    rows = []
    for spec in matrix(have_vllm, gpus, have_ds):
        spec["config"] = train_config(spec, paths, out / "runs" / spec["name"])
        spec["out"] = str(out / spec["name"])
        t0 = time.perf_counter()
        code, tail = launch(spec, out, repo)
        files = sorted(out.glob(f"{spec['name']}.rank*.json"))
        if code or not files:
            failures.append(f"{spec['name']}: exit {code}\n{tail}")
            print(f"FAIL {spec['name']} (exit {code})\n{tail}", flush=True)
            continue
        res = json.loads(files[0].read_text())
        st = res["steps"]
        losses = [s["loss"] for s in st]
        rewards = [s["reward"] for s in st]
        problems = []
        if not all(math.isfinite(v) for v in losses):
            problems.append(f"non-finite loss {losses}")
        if spec["launch"] == "single" and not (sum(rewards[-2:]) / 2 > sum(rewards[:2]) / 2):
            problems.append(f"reward did not rise {['%.3f' % r for r in rewards]}")
        if not res["mask_ok"]:
            problems.append("a backend's mask disagrees with the id rule")
        step_time = sorted(s["time"] for s in st[1:])[len(st[1:]) // 2]  # median, the first step warms up
        rows.append((spec["name"], step_time, sorted(s["gen_tokens_per_s"] for s in st)[len(st) // 2],
                     res["peak_mem_gib"], rewards[0], rewards[-1], "ok" if not problems else "; ".join(problems)))
        if problems:
            failures.append(f"{spec['name']}: {'; '.join(problems)}")
        print(f"{'ok  ' if not problems else 'FAIL'} {spec['name']}  {time.perf_counter() - t0:.0f}s", flush=True)
    # TRL on the same settings: the sample backend against TRL's generate, vllm against TRL's colocate
    trl_rows = []
    for backend in ("sample",) + (("vllm",) if have_vllm else ()):
        spec = dict(arch="llama", backend=backend, lora=False, gc=False, launch="single", name=f"llama-{backend}")
        spec["config"] = train_config(spec, paths, out / "runs" / f"trl-{backend}")
        spec["out"] = str(out / f"trl-{backend}")
        (out / f"trl-{backend}.spec.json").write_text(json.dumps(spec))
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "trl", str(out / f"trl-{backend}.spec.json")],
                           capture_output=True, text=True, timeout=600)
        f = out / f"trl-{backend}.trl.json"
        if p.returncode or not f.exists():
            print(f"TRL {backend}: failed (exit {p.returncode})\n{(p.stdout + p.stderr)[-800:]}", flush=True)
            continue
        trl_rows.append(json.loads(f.read_text()))
    print("\n| run | step time s (median) | generation tokens/s | peak GiB | reward first -> last | checks |")
    print("|---|---|---|---|---|---|")
    for name, t, tps, mem, r0, r1, ok in rows:
        print(f"| {name} | {t:.2f} | {tps:.0f} | {mem:.2f} | {r0:.3f} -> {r1:.3f} | {ok} |")
    for r in trl_rows:
        print(f"| {r['name']} | {r['step_time']:.2f} | - | {r['peak_mem_gib']:.2f} | "
              f"{(r['reward'][0] or 0):.3f} -> {(r['reward'][-1] or 0):.3f} | TRL |")
    print(f"\n{len(rows) - sum(1 for r in rows if r[-1] != 'ok')}/{len(rows)} runs passed; "
          f"{len(failures)} failure(s)")
    for f in failures:
        print("  " + f.splitlines()[0])
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if sys.argv[1] == "all":
        sys.exit(check_all(sys.argv[2]))
    elif sys.argv[1] == "run":
        run_one(sys.argv[2])
    elif sys.argv[1] == "trl":
        run_trl(sys.argv[2])
    else:
        sys.exit(f"usage: {sys.argv[0]} all OUT_DIR | run SPEC.json | trl SPEC.json")
