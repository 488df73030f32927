"""DeepSpeed ZeRO-3 on CPU (DeepSpeed's CPU accelerator, gloo, two processes) through accelerate.

Run as a script under torchrun, this file prepares the tiny model the way the trainer does (a
DeepSpeed config with ``"auto"`` batch sizes and no DataLoader: ``sharding.configure_zero3``), runs
one GRPO-style update of two micro-batches through ``sharding.micro_batch`` and counts the engine's
optimizer steps, then compares the update with plain SGD on the whole batch; the supervised warm-up
runs on a second engine prepared with GRPO's AdamW and must train as it does on a plain model. Skipped without
deepspeed (in the dev extra, so CI runs them; ``DS_BUILD_OPS=0 pip install deepspeed==0.19.8`` suffices).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _model():
    import torch

    from grpo_plugins.grpo import tiny

    m = tiny.build_model(tiny.build_tokenizer(), hidden_size=32, layers=2, heads=2, seed=0)
    return m.to(torch.float32)


def _loss(model, ids):
    return model(input_ids=ids, labels=ids).loss / 2  # two micro-batches, normalised over the batch


def main(out: Path) -> None:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin

    from grpo_plugins.grpo import sharding

    ds = DeepSpeedPlugin(hf_ds_config={"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": "auto",
                                       "gradient_accumulation_steps": "auto", "gradient_clipping": 0.0})
    acc = Accelerator(deepspeed_plugin=ds)
    rank = torch.distributed.get_rank()
    res: dict = {"engine": sharding.engine(acc), "world": torch.distributed.get_world_size()}
    model = _model()
    ids = torch.randint(3, 50, (4, 8), generator=torch.Generator().manual_seed(1))
    want = _model()
    ref_opt = torch.optim.SGD(want.parameters(), lr=1.0)  # SGD: a gradient scaled twice would show
    (_loss(want, ids[:2]) + _loss(want, ids[2:])).backward()
    ref_opt.step()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    # with these "auto" and no DataLoader accelerate's prepare raises ValueError (issue 27)
    res["auto_before"] = ds.is_auto("train_micro_batch_size_per_gpu")
    cfg = sharding.configure_zero3(acc, 2, 2, bf16=True)
    res["config"] = json.loads(json.dumps({k: cfg.get(k) for k in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                                             "train_batch_size", "torch_autocast")}))
    cfg["torch_autocast"]["enabled"] = False  # the float32 comparison below
    model, opt = acc.prepare(model, opt)
    engine = acc.deepspeed_engine_wrapped.engine
    steps, syncs = [], []
    real_step = engine.step

    def counted(*a, **k):
        steps.append(1)
        return real_step(*a, **k)

    engine.step = counted
    for k, chunk in enumerate((ids[:2], ids[2:])):
        with sharding.micro_batch(acc, model, k, 2):
            syncs.append(acc.sync_gradients)
            acc.backward(_loss(model, chunk), **sharding.backward_kwargs(acc))
    opt.step()
    opt.zero_grad()
    res["syncs"], res["engine_steps"] = syncs, len(steps)
    res["train_batch_size"] = engine.train_batch_size()
    got = sharding.model_state(engine.module)
    res["update_max_diff"] = max(float((got[n] - p.detach()).abs().max()) for n, p in want.named_parameters())
    res.update(_resume(out, cfg, ids))
    res.update(_sft(out, acc))
    (out / f"rank{rank}.json").write_text(json.dumps(res))
    # Without this, gloo's threads die in interpreter teardown; on a loaded machine rank 0 then aborted
    # ("terminate called without an active exception", SIGABRT) after its results were written (CI, 2026-12-07).
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def _resume(out: Path, cfg: dict, ids) -> dict:
    """Save a ZeRO-3 AdamW engine as the trainer does (save_pretrained + per-rank optimizer), resume a
    fresh engine from it: the next step's loss and update must be the same."""
    import deepspeed
    import torch

    from grpo_plugins.grpo import sharding
    from grpo_plugins.grpo.checkpoint import load_checkpoint, save_checkpoint

    rank = torch.distributed.get_rank()
    cfg = {**cfg, "gradient_accumulation_steps": 1}

    def engine():
        m = _model()
        return deepspeed.initialize(model=m, optimizer=torch.optim.AdamW(m.parameters(), lr=1e-2), config=cfg)[:2]

    def step(e):
        loss = e(input_ids=ids, labels=ids).loss
        e.backward(loss)
        e.step()
        return float(loss.detach())

    (a, opt_a), (b, opt_b) = engine(), engine()
    step(a)

    def sched():  # the scheduler only travels through the checkpoint here
        return torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), lambda s: 1.0)

    ostate, per_rank = sharding.optimizer_state(a.module, opt_a)
    path = save_checkpoint(out / "ckpt", 1, sharding.model_state(a.module), ostate, sched(), {}, is_main=rank == 0,
                           rank=rank, model=a.module, barrier=torch.distributed.barrier, per_rank_optimizer=per_rank)
    torch.distributed.barrier()
    load_checkpoint(path, b.module, opt_b, sched(), rank=rank)
    # generation lifts the per-module hooks inside the one gather and puts them back after
    from grpo_plugins.grpo.generation import sample

    sharding.after_prepare(a.module, a)
    off = a.module._zero3_offload
    before = len(off.forward_hooks)
    with torch.no_grad():
        with sharding.gather(a.module.parameters()):
            hooked = sample(a.module, ids[:, :4], torch.ones_like(ids[:, :4]), 3, [-1], pad_id=0, greedy=True)
        with sharding.for_generation(a.module):
            inside = len(off.forward_hooks)
            lifted = sample(a.module, ids[:, :4], torch.ones_like(ids[:, :4]), 3, [-1], pad_id=0, greedy=True)
    gen = {"gen_hooks": [before, inside, len(off.forward_hooks)], "gen_equal": bool(torch.equal(hooked, lifted))}
    losses = [step(a), step(b)]
    sa, sb = sharding.model_state(a.module), sharding.model_state(b.module)
    return {"resume_next_loss": losses, "resume_files": sorted(p.name for p in path.iterdir()),
            "resume_step_max_diff": max(float((sa[k] - sb[k]).abs().max()) for k in sa), **gen}


def _sft(out: Path, acc) -> dict:
    """The supervised warm-up on a ZeRO-3 engine prepared the way the trainer prepares GRPO's (an AdamW
    at GRPO's lr, betas and decay; two micro-batches) against the warm-up on a plain float32 model."""
    import contextlib
    from types import SimpleNamespace

    import torch

    from grpo_plugins.grpo import sharding, tiny
    from grpo_plugins.grpo.optim import make_scheduler
    from grpo_plugins.grpo.sft import supervised_warmup

    rank = torch.distributed.get_rank()
    data = out / f"sft{rank}.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{a}+{b}=", "completion": str(a + b)}) + "\n"
                            for a in range(5) for b in range(5)))
    cfg = SimpleNamespace(sft=SimpleNamespace(data=str(data), steps=4, batch_size=4, learning_rate=1e-2, warmup_steps=1),
                          data=SimpleNamespace(chat_template=False, system_prompt=None), train=SimpleNamespace(seed=0))
    tok = tiny.build_tokenizer()
    start, plain = _model(), _model()
    single = SimpleNamespace(device=torch.device("cpu"), is_main_process=False, state=SimpleNamespace(),
                             backward=lambda loss: loss.backward(), clip_grad_norm_=torch.nn.utils.clip_grad_norm_)
    want = supervised_warmup(plain, tok, cfg, single, contextlib.nullcontext, show_progress=False)
    m = _model()
    grpo = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.5, 0.6), weight_decay=0.1)
    make_scheduler(grpo, "constant", 2, 10)  # GRPO's schedule: lr 5e-5 (and initial_lr 1e-4) before its first update
    ds = sharding.configure_zero3(acc, 2, 2, bf16=False)
    ds["gradient_clipping"] = 1.0  # configs/accelerate-zero3.yaml's, the warm-up's clip
    acc.deepspeed_engine_wrapped = None  # accelerate wraps only the first engine it prepares; backward needs this one
    engine, _ = acc.prepare(m, grpo)
    keys = ("lr", "initial_lr", "betas", "weight_decay")
    before = [{k: g[k] for k in keys} for g in engine.optimizer.param_groups]
    got = supervised_warmup(engine, tok, cfg, acc, contextlib.nullcontext, show_progress=False)
    after = [{k: g[k] for k in keys} for g in engine.optimizer.param_groups]
    state = sharding.model_state(engine.module)
    ref = dict(plain.named_parameters())
    return {"sft_losses": [want, got], "sft_groups": json.loads(json.dumps([before, after])),
            "sft_moments": len(engine.optimizer.optimizer.state),
            "sft_moved": max(float((p.detach() - ref[n].detach()).abs().max()) for n, p in start.named_parameters()),
            "sft_max_diff": max(float((state[n] - p.detach()).abs().max()) for n, p in ref.items())}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    pytest.importorskip("deepspeed")
    from grpo_plugins.grpo.vllm import free_port

    out = tmp_path_factory.mktemp("zero3")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(DS_ACCELERATOR="cpu", ACCELERATE_USE_DEEPSPEED="true")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), __file__, str(out)], capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_prepare_with_auto_batch_sizes_needs_concrete_ones(ranks):
    for r in ranks:
        assert r["engine"] == "zero3"
        assert r["auto_before"]
        assert r["config"] == {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2,
                               "train_batch_size": None, "torch_autocast": {"enabled": True, "dtype": "bfloat16"}}


def test_one_engine_step_per_update_not_per_micro_batch(ranks):
    for r in ranks:
        assert r["syncs"] == [False, True]
        assert r["engine_steps"] == 1
        assert r["world"] == 2 and r["train_batch_size"] == 8  # 2 rows x 2 micro-batches x 2 processes


def test_the_accumulated_update_equals_sgd_on_the_whole_batch(ranks):
    for r in ranks:
        assert r["update_max_diff"] < 1e-5  # a step per micro-batch or a loss divided by 2 again: ~1e-1


def test_resume_gives_the_same_next_step(ranks):
    for r in ranks:
        a, b = r["resume_next_loss"]
        assert a == b and r["resume_step_max_diff"] == 0.0
        assert {"model.safetensors", "optimizer-0.pt", "optimizer-1.pt"} <= set(r["resume_files"])
        assert "model.pt" not in r["resume_files"]


def test_generation_lifts_the_zero3_hooks_inside_the_gather_and_restores_them(ranks):
    for r in ranks:
        before, inside, after = r["gen_hooks"]
        assert before > 0 and inside == 0 and after == before
        assert r["gen_equal"]  # and training after it resumes exactly (test_resume_gives_the_same_next_step)


def test_sft_trains_at_its_own_lr_and_hands_grpo_its_optimizer_back(ranks):
    for r in ranks:
        assert r["sft_moved"] > 1e-2  # lr 1e-2: GRPO's 5e-5 moves the weights ~4e-4 in 4 steps
        assert r["sft_max_diff"] < 1e-4, r["sft_max_diff"]
        want, got = r["sft_losses"]
        assert got == pytest.approx(want, rel=1e-4)
        before, after = r["sft_groups"]
        assert after == before and before[0]["betas"] == [0.5, 0.6] and before[0]["lr"] == pytest.approx(5e-5)
        assert r["sft_moments"] == 0  # GRPO's AdamW starts without the warm-up's moments, as elsewhere


if __name__ == "__main__":
    main(Path(sys.argv[1]))
