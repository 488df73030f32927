"""The tiny on-disk tokenizer the demo and tests build: one token per character, exact offsets."""

from grpo_plugins.grpo.tiny import build_tokenizer


def test_every_character_is_one_token_with_exact_offsets():
    tok = build_tokenizer()
    text = "12+3=?\n<think>a\n\nb</think><answer>15</answer>"
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    assert tok.unk_token_id not in enc["input_ids"]  # newlines are real tokens, not <unk>
    pieces = [text[s:e] for s, e in enc["offset_mapping"]]
    assert "".join(pieces) == text
    assert pieces.count("\n") == 3 and "<think>" in pieces and "</answer>" in pieces
    assert tok.decode(enc["input_ids"]) == text


def test_building_twice_gives_identical_files_and_leaves_the_global_rng_alone(tmp_path):
    import torch

    from grpo_plugins.grpo.tiny import build

    small = dict(n_train=20, n_eval=5, n_sft=20, hidden_size=16, layers=1, heads=2, seed=7)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    build(tmp_path / "a", **small)
    # a build must not draw from (or reseed) the global generator: a run that builds the model and a
    # run on an already built one then draw the same numbers afterwards
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(999)  # another global state: the weights come from the build's own seed
    build(tmp_path / "b", **small)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert any(p.suffix == ".safetensors" for p in files)
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    other = build(tmp_path / "c", **{**small, "seed": 8})
    assert (other / "model" / "model.safetensors").read_bytes() != (tmp_path / "a" / "model" / "model.safetensors").read_bytes()



def test_a_trainer_that_builds_the_tiny_model_trains_like_one_on_the_built_model(tmp_path):
    """Issue 30: a trainer whose config builds the tiny model (a cycle's first phase, which runs no
    preflight) and one on the already built model draw the same rollouts and end with the same weights."""
    import torch

    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.trainer import GRPOTrainer
    from helpers_runs import DigitShare, private_manager, tiny_run_config

    tiny = tmp_path / "tiny"
    small = {"dir": str(tiny), "n_train": 32, "n_eval": 4, "n_sft": 16, "hidden_size": 16, "layers": 1, "heads": 2}

    def run(name):
        cfg = TrainConfig.model_validate(tiny_run_config(
            tiny, tmp_path / name, ["digit_share"], tiny=small, train={"seed": 3, "torch_threads": 1},
            log={"tensorboard": False, "samples": 0, "progress": False}))
        manager, plugin = private_manager(DigitShare)
        trainer = GRPOTrainer(cfg, manager)
        metrics = [trainer.train_step() for _ in range(2)]
        trainer.host.close()
        texts = [[r.text for r in batch] for batch in plugin.batches]
        weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        return texts, [m["loss"] for m in metrics], weights

    texts, losses, weights = run("first")  # builds the model and data under tiny/
    assert (tiny / "model").is_dir() and any(x != 0.0 for x in losses)
    texts2, losses2, weights2 = run("second")  # the same config on the built model
    assert texts == texts2 and losses == losses2
    assert all(torch.equal(weights[k], weights2[k]) for k in weights)
