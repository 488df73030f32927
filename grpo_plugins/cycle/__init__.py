"""Iterative RL cycles: GRPO phase, step labelling, a crash-safe replay buffer and reward-model retraining.

``replay`` and ``history`` are public modules (the prm plugin keeps its training history with them).
"""
