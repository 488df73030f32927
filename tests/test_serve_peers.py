"""The reward server as OpenRLHF and slime meet it, over real HTTP on loopback: end-of-sequence text
taken from a tokenizer on disk, bad rows answered without a retry storm, and errors someone can see
(one log line per failed request or row, counters on /metrics)."""

from __future__ import annotations

import json

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_helpers import running  # noqa: E402

EOS_CFG = {"rewards": [{"name": "math", "options": {"workers": 1}},
                       {"name": "format", "weight": 0.1, "options": {"pattern": r"<answer>.*</answer>"}}]}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """The tiny tokenizer with its own end token ``<|stop|>`` as eos and ``<|eot|>`` as a second
    generation EOS (as Llama-3 Instruct's ``<|eot_id|>``), saved the way a model folder holds it."""
    pytest.importorskip("transformers")
    from grpo_plugins.grpo.tiny import build_tokenizer

    tok = build_tokenizer()
    tok.add_special_tokens({"eos_token": "<|stop|>", "additional_special_tokens": ["<|eot|>"]})
    path = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(path)
    ids = [tok.convert_tokens_to_ids("<|stop|>"), tok.convert_tokens_to_ids("<|eot|>")]
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": ids}))
    return path


def slime(url, response, label="72"):
    return httpx.post(url + "/slime", timeout=30, json={"prompt": "Q:", "response": response, "label": label})


def test_eos_tokens_come_from_the_configured_tokenizer(tokenizer_dir):
    with running(dict(EOS_CFG, serve={"tokenizer": str(tokenizer_dir)})) as url:
        stop = slime(url, "<answer>72</answer><|stop|>")
        eot = slime(url, "<answer>72</answer><|eot|>\n<pad>")
        # the tokenizer's tokens replace the default list: Qwen's <|im_end|> is this model's text
        qwen = slime(url, "<answer>72</answer><|im_end|>")
        o = httpx.post(url + "/get_reward", timeout=30, json={
            "query": ["Q:<answer>72</answer><|stop|>"], "prompts": ["Q:"], "labels": ["72"]})
        listing = httpx.get(url + "/rewards").json()
    assert stop.json()["reward"] == pytest.approx(1.1) and eot.json()["reward"] == pytest.approx(1.1)
    assert qwen.json()["rewards"] == {"math": 1.0, "format": 0.0}
    assert o.json()["rewards"] == pytest.approx([1.1])
    assert set(listing["eos_tokens"]) == {"<|stop|>", "<pad>", "<|eot|>"}


def test_explicit_eos_tokens_are_added_to_the_tokenizers(tokenizer_dir):
    with running(dict(EOS_CFG, serve={"tokenizer": str(tokenizer_dir), "eos_tokens": ["<|im_end|>"]})) as url:
        assert slime(url, "<answer>72</answer><|im_end|><|stop|>").json()["reward"] == pytest.approx(1.1)


def test_without_a_tokenizer_the_configured_list_is_used():
    with running(dict(EOS_CFG, serve={"eos_tokens": ["[END]"]})) as url:
        assert slime(url, "<answer>72</answer>[END]").json()["reward"] == pytest.approx(1.1)
        assert slime(url, "<answer>72</answer><|im_end|>").json()["rewards"]["format"] == 0.0


def test_an_unloadable_tokenizer_is_one_line_naming_the_setting(tmp_path):
    from grpo_plugins.errors import SettingError
    from grpo_plugins.serve import ServeConfig, create_app
    from serve_helpers import manager

    cfg = ServeConfig.model_validate(dict(EOS_CFG, serve={"tokenizer": str(tmp_path / "nowhere")}))
    with pytest.raises(SettingError, match=r"^serve\.tokenizer: cannot load tokenizer '.*nowhere'"):
        create_app(cfg, manager())
