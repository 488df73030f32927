"""Shared test setup: ``tiny_dir``, a tiny model with its data on disk. Fixtures for plugin authors
live in grpo_plugins.pytest_plugin (pytest11)."""

import pytest


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A 2-layer, 32-wide model and tokenizer with 64 train, 8 eval and 64 SFT rows (``grpo.tiny``), per module."""
    from grpo_plugins.grpo import tiny

    return tiny.build(tmp_path_factory.mktemp("tiny") / "t", n_train=64, n_eval=8, n_sft=64,
                      hidden_size=32, layers=2, heads=2, seed=0)
