"""The GRPO trainer: config, rollouts (generation, decode, vllm), advantages, loss, checkpoints, logging.

Needs the ``[train]`` extra (torch, transformers, ...); importing this package alone loads none of it.
"""
