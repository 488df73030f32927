"""Shared test setup: ``tiny_dir``, a tiny model with its data on disk. Fixtures for plugin authors
live in grpo_plugins.pytest_plugin (pytest11)."""

import pytest

# tests/data holds test inputs (the legit sandbox corpus has its own test_*.py files, run through the
# sandbox by test_sandbox_corpus.py), never tests of this suite
collect_ignore = ["data"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A 2-layer, 32-wide model and tokenizer with 64 train, 8 eval and 64 SFT rows (``grpo.tiny``), per module."""
    from grpo_plugins.grpo import tiny

    return tiny.build(tmp_path_factory.mktemp("tiny") / "t", n_train=64, n_eval=8, n_sft=64,
                      hidden_size=32, layers=2, heads=2, seed=0)


@pytest.fixture(scope="module", params=["docker", "local"])
def backend(request):
    """Each sandbox backend in turn (docker, then local bubblewrap), two runs in parallel, per module."""
    from grpo_code.testing import make_backend

    b = make_backend(request.param, parallel=2)
    yield b
    b.close()


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    """A 32-wide one-layer tiny Llama and its character tokenizer saved in a folder (per module)."""
    from grpo_plugins.grpo.tiny import build_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny-lm")
    tok = build_tokenizer()
    build_model(tok, hidden_size=32, layers=1, heads=2, seed=3).save_pretrained(path)
    tok.save_pretrained(path)
    return path



@pytest.fixture(autouse=True)
def _no_stop_left_installed():
    """Every test leaves the stop controller (grpo_plugins.stop) as it found it: a test that leaves it
    installed or a stop pending fails here, and the state is reset so later tests (and pytest's own
    Ctrl-C) are not affected."""
    from grpo_plugins import stop

    yield
    leaked = stop.controller.reset()
    if leaked != (0, None):
        pytest.fail(f"the stop controller was left installed or pending (depth, signal) = {leaked}")
