"""Iterative RL cycles: GRPO phase, step labelling, the replay buffer phase and reward-model retraining.

The buffer the cycle fills is ``grpo_plugins.replay``.
"""
