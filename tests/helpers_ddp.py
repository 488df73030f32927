"""One GRPO step, under torchrun (several processes) or alone; saves gradients and rollout groups.

    python -m torch.distributed.run --nproc_per_node 2 tests/helpers_ddp.py CONFIG.json OUT_DIR
    python tests/helpers_ddp.py CONFIG.json OUT_DIR

Sampling is made independent of the batch a prompt lands in: each group is sampled on its own,
unpadded, from a seed derived from its prompt tokens. Then one process with all prompts and two
processes with half each sample the same completions, and their gradients must agree.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import torch

from grpo_plugins import PluginManager, Reward, RewardResult, hookimpl
from grpo_plugins.grpo.config import TrainConfig
from grpo_plugins.grpo.generation import Completions
from grpo_plugins.grpo.trainer import GRPOTrainer


class DigitShare(Reward):
    """Share of digits in the completion: varies within every group, even for a random model."""

    name = "digit_share"

    def score(self, samples):
        return [RewardResult(sum(c.isdigit() for c in s.text) / max(len(s.text), 1)) for s in samples]


class Plugin:
    def __init__(self):
        self.groups: list[str] = []

    @hookimpl
    def register_rewards(self, register):
        register(DigitShare)

    @hookimpl
    def on_rollouts_collected(self, rollouts, step, cycle):
        self.groups += [r.prompt_text for r in rollouts]


def main() -> None:
    cfg = TrainConfig.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    out = Path(sys.argv[2])
    plugin = Plugin()
    manager = PluginManager(load_entrypoints=False)
    manager.register(plugin, name="ddp_test")
    trainer = GRPOTrainer(cfg, manager)
    trainer.reset_reference()
    G = cfg.rollout.num_generations
    generate = trainer.generator.generate

    def per_group(model, prompt_ids, prompt_mask, max_new_tokens, greedy=False, version=0):
        outs = []
        for s in range(0, prompt_ids.shape[0], G):
            keep = prompt_mask[s].bool()
            ids = prompt_ids[s:s + G][:, keep]
            torch.manual_seed(zlib.crc32(str(ids[0].tolist()).encode()))
            outs.append(generate(model, ids, torch.ones_like(ids), max_new_tokens, greedy, version))
        return Completions.cat(outs, trainer.tokenizer.pad_token_id)

    trainer.generator.generate = per_group
    grads = {}
    step = trainer.optimizer.step

    def record(*a, **k):
        grads.update({n: p.grad.detach().clone() for n, p in trainer.policy.named_parameters()})
        return step(*a, **k)

    trainer.optimizer.step = record
    metrics = trainer.train_step()
    torch.save({"grads": grads, "prompts": plugin.groups, "world": trainer.world, "metrics": metrics},
               out / f"rank{trainer.rank}-of-{trainer.world}.pt")


if __name__ == "__main__":
    main()
