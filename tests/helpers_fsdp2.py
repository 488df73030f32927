"""FSDP2 (torch ``fully_shard``) on CPU with gloo: the trainer's sharded code paths, per rank.

    python -m torch.distributed.run --nproc_per_node 2 tests/helpers_fsdp2.py OUT_DIR

accelerate turns an FSDP config into no distribution at all on a machine without CUDA, so this
shards with torch directly, as accelerate's FSDP2 path does (one unit per decoder layer + the
root), and checks against an unsharded copy of the same model: the vLLM push's gathered weights,
synced generation when one process finishes first, the sharded reference's log-probs, and a
checkpoint round trip of model and optimizer as the trainer writes it (save_pretrained, no
model.pt) through the full state-dict API, a save killed midway included.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    from torch.distributed.fsdp import fully_shard

    from grpo_plugins.grpo import sharding, tiny
    from grpo_plugins.grpo import checkpoint
    from grpo_plugins.grpo.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from grpo_plugins.grpo.decode import HFDecoder, decoder_for
    from grpo_plugins.grpo.generation import sample
    from grpo_plugins.grpo.logprobs import token_logprobs
    from grpo_plugins.grpo.vllm import vllm_weights

    tok = tiny.build_tokenizer()

    def build():
        m = tiny.build_model(tok, hidden_size=32, layers=2, heads=2, seed=0)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():  # a greedy path that does not repeat one token
            for p in m.parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        return m.eval()

    def shard(m):
        for layer in m.model.layers:
            fully_shard(layer)
        return fully_shard(m)

    plain = build()
    policy = shard(build())
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-2)  # on the shards, before any forward (as accelerate)
    res: dict = {"rank": rank, "is_fsdp2": sharding.is_fsdp2(policy), "synced": sharding.synced(policy),
                 "decoder_is_hf": isinstance(decoder_for(policy, 4), HFDecoder)}

    # the vLLM push: whole tensors, transformers' names, equal to the unsharded weights
    want = dict(plain.named_parameters())
    pushed = list(vllm_weights(policy))
    res["push_names_ok"] = [n for n, _ in pushed] == list(want)
    res["push_equal"] = all(torch.equal(t, want[n].data) for n, t in pushed)

    # synced generation: rank 0's rows stop at once (their first greedy token is the EOS), rank 1's run
    # to max_new_tokens; each rank's ids must equal the unsharded model's
    prompts = ["12+34=?\n", "5+7=?\n"] if rank == 0 else ["99+9=?\n", "1+1=?\n"]
    enc = tok(prompts, return_tensors="pt", padding=True)
    first = sample(plain, enc.input_ids, enc.attention_mask, 1, eos_id=-1, pad_id=0, greedy=True)[:, 0].tolist()
    eos_all = [None, None]
    dist.all_gather_object(eos_all, first if rank == 0 else [])
    stops = eos_all[0]  # rank 0's first tokens are the stop set on both ranks
    want_ids = sample(plain, enc.input_ids, enc.attention_mask, 6, stops, pad_id=0, greedy=True)
    with sharding.for_generation(policy):
        got_ids = sample(policy, enc.input_ids, enc.attention_mask, 6, stops, pad_id=0, greedy=True, synced=True)
    w = want_ids.shape[1]
    res["gen_lengths"] = [int(w), int(got_ids.shape[1])]  # (alone, synced): the early rank kept stepping
    res["gen_equal"] = bool(torch.equal(got_ids[:, :w], want_ids) and (got_ids[:, w:] == 0).all())

    # FSDP2 + LoRA + backend generate: PeftModel.generate skips the root's pre-forward unless registered
    from peft import LoraConfig, get_peft_model

    def lora(m):
        return get_peft_model(m, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))

    def peft_generate(m):
        torch.manual_seed(0)
        with torch.no_grad(), sharding.for_generation(m):
            return m.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, max_new_tokens=3,
                              do_sample=False, pad_token_id=0, eos_token_id=None)

    torch.manual_seed(0)
    plain_lora = lora(build())
    torch.manual_seed(0)
    sharded_lora = lora(build())
    for layer in sharded_lora.base_model.model.model.layers:
        fully_shard(layer)
    fully_shard(sharded_lora)
    try:
        peft_generate(sharded_lora)
        res["lora_generate_unregistered_fails"] = False
    except Exception:  # DTensor shards meet whole tensors in the embedding / lm_head
        res["lora_generate_unregistered_fails"] = True
    sharding.register_generate(sharded_lora)
    res["lora_generate_equal"] = bool(torch.equal(peft_generate(sharded_lora), peft_generate(plain_lora)))

    # the sharded reference computes the unsharded model's log-probs
    ids = torch.cat([enc.input_ids, want_ids], 1)
    am = torch.ones_like(ids)
    am[:, :enc.input_ids.shape[1]] = enc.attention_mask
    ref = sharding.shard_like(copy.deepcopy(plain), policy)
    with torch.no_grad():
        a = token_logprobs(plain, ids, am, want_ids.shape[1])[0]
        b = token_logprobs(ref, ids, am, want_ids.shape[1])[0]
    res["ref_max_diff"] = float((a - b).abs().max())
    res["ref_frozen"] = not any(p.requires_grad for p in ref.parameters())

    # checkpoint round trip: one AdamW step, save as the trainer does (save_pretrained, no model.pt),
    # load into a fresh shard through the sharded state-dict API
    policy.train()
    loss = token_logprobs(policy, ids, am, want_ids.shape[1])[0].sum()
    loss.backward()
    opt.step()
    state = sharding.model_state(policy)
    ostate, per_rank = sharding.optimizer_state(policy, opt)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    def save(step):
        return save_checkpoint(out / "ckpt", step, state, ostate, sched, {"x": step}, is_main=rank == 0, rank=rank,
                               model=policy, tokenizer=tok, barrier=dist.barrier, per_rank_optimizer=per_rank)

    path = save(1)
    dist.barrier()
    # a save killed after its files are half written (here: in save_pretrained) leaves checkpoint-1 as latest
    real = checkpoint._save_pretrained

    def killed(model, tokenizer, where, sd):
        real(model, tokenizer, where, sd)
        raise KeyboardInterrupt("killed mid-save")

    checkpoint._save_pretrained = killed
    try:
        save(2)
        res["kill_interrupted"] = rank != 0
    except KeyboardInterrupt:
        res["kill_interrupted"] = True
    finally:
        checkpoint._save_pretrained = real
    dist.barrier()
    latest = latest_checkpoint(out / "ckpt")
    res["kill_keeps_previous"] = latest is not None and latest.name == path.name
    fresh = shard(build())
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    load_checkpoint(latest, fresh, fresh_opt, torch.optim.lr_scheduler.LambdaLR(fresh_opt, lambda s: 1.0), rank=rank)
    again = sharding.model_state(fresh)
    res["ckpt_model_equal"] = rank != 0 or (set(again) == set(state) and all(torch.equal(again[k], state[k])
                                                                              for k in state))
    res["ckpt_files"] = sorted(p.name for p in Path(path).iterdir())
    # the next step's loss and update from the restored model and optimizer equal the original's
    next_loss = []
    for m, o in ((policy, opt), (fresh, fresh_opt)):
        o.zero_grad()
        step_loss = token_logprobs(m, ids, am, want_ids.shape[1])[0].sum()
        step_loss.backward()
        o.step()
        next_loss.append(float(step_loss.detach()))
    res["resume_next_loss"] = next_loss
    s1, s2 = sharding.model_state(policy), sharding.model_state(fresh)
    res["resume_step_max_diff"] = max((float((s1[k] - s2[k]).abs().max()) for k in s1), default=0.0)
    (out / f"rank{rank}.json").write_text(json.dumps(res))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
