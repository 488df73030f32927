"""OpenRLHF 0.11.2's own reward client (openrlhf/utils/agent.py) against ``grpo-plugins serve``:
``SingleTurnAgentExecutor._fetch_rewards_via_http`` and ``.execute`` (the rollout path that decodes
prompt + response with ``skip_special_tokens=False`` and posts it), with a stand-in for the vLLM
engine only. ``SamplesGenerator._process_response_into_experience`` (the next step) is not reached:
openrlhf/trainer/ppo_utils/samples_generator.py imports ``vllm`` at module level."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
from peer_helpers import EOS_TEXTS, REPO, Clock, answers, requests_seen

from openrlhf.utils.agent import SingleTurnAgentExecutor


def test_the_pinned_release():
    assert version("openrlhf") == "0.11.2"


def fetch(url, queries, prompts, labels):
    executor = SingleTurnAgentExecutor(remote_rm_url=url + "/get_reward")
    return asyncio.run(executor._fetch_rewards_via_http(queries, prompts, labels))


@pytest.mark.parametrize("eos", EOS_TEXTS)
def test_a_response_ending_in_eos_text_pays_math_and_format(server, eos):
    before = requests_seen(server, "/get_reward")
    [out] = fetch(server, [f"Q: 36+36? <answer>72</answer>{eos}", "Q: 2+2? <answer>5</answer>" + eos],
                  ["Q: 36+36? ", "Q: 2+2? "], ["72", "4"])
    assert out["rewards"] == pytest.approx([1.1, 0.1]) and out["scores"] == pytest.approx([1.1, 0.1])
    assert out["extra_logs"]["math"] == [1.0, 0.0] and out["extra_logs"]["format"] == [1.0, 1.0]
    assert out["status"] == ["ok", "ok"]
    assert requests_seen(server, "/get_reward") == before + 1


def test_a_row_without_gold_is_answered_once_with_its_status(server):
    before = requests_seen(server, "/get_reward")
    [out] = fetch(server, ["Q: <answer>72</answer><|im_end|>", "Q: <answer>72</answer><|im_end|>"],
                  ["Q: ", "Q: "], [None, "72"])
    # math takes on_error zero, format is not in serve.pay_without_label: the row pays 0, not 0.1
    assert out["rewards"] == pytest.approx([0.0, 1.1])
    assert out["status"] == ["no_label", "ok"]
    assert "no gold answer" in out["errors"][0] and out["errors"][1] is None
    assert requests_seen(server, "/get_reward") == before + 1  # a 200: OpenRLHF's retry loop never runs


def test_a_request_without_labels_names_labels(server):
    # OpenRLHF sends labels None for every row when --data.label_key is not set
    before = requests_seen(server, "/get_reward")
    [out] = fetch(server, ["Q: <answer>72</answer>"], ["Q: "], [None])
    assert out["status"] == ["no_label"] and "'labels'" in out["errors"][0]
    assert requests_seen(server, "/get_reward") == before + 1


def test_a_400_is_retried_5_times_by_openrlhf(server):
    # what the server cannot read at all is still a 400, and OpenRLHF retries it like any error
    before = answers(server).get(("/get_reward", "400"), 0.0)
    with Clock() as c, pytest.raises(RuntimeError, match="Request error for 5 times"):
        fetch(server, [7], ["Q: "], ["72"])  # a query that is not a string
    assert answers(server).get(("/get_reward", "400"), 0.0) == before + 5 and c.seconds >= 4


class Engine:
    """Stands in for vLLM's engine: ``generate`` answers the given response's token ids."""

    def __init__(self, ids):
        self.ids = ids

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        return SimpleNamespace(outputs=[SimpleNamespace(token_ids=self.ids, finish_reason="stop", logprobs=None)])


def tokenizer():
    from grpo_plugins.grpo.tiny import build_tokenizer

    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": [e for e in EOS_TEXTS if e != tok.eos_token]})
    return tok


@pytest.mark.parametrize("eos", EOS_TEXTS)
def test_execute_decodes_with_special_tokens_and_gets_1_1(server, eos):
    tok = tokenizer()
    response = tok(text=f"<answer>72</answer>{eos}", add_special_tokens=False)["input_ids"]
    assert tok.decode(response[-1:], skip_special_tokens=False) == eos  # EOS is one special token
    executor = SingleTurnAgentExecutor(remote_rm_url=server + "/get_reward")
    out = asyncio.run(executor.execute("Q: 36+36? ", "72", SimpleNamespace(max_tokens=64, logprobs=None),
                                       256, tok, Engine(response)))
    # execute keeps the answer of its one-query request: one-element lists
    assert out["reward"] == pytest.approx([1.1]) and out["scores"] == pytest.approx([1.1])
    assert out["extra_logs"] == {"math": [1.0], "format": [1.0]}


def test_server_down_is_openrlhfs_own_error_after_its_5_tries(dead_url):
    # try_max_times=5 is a default of an inner function, no public config: 5 refused connections,
    # a second apart, then OpenRLHF's RuntimeError; execute() logs it and leaves the reward None
    with Clock() as c, pytest.raises(RuntimeError, match="Request error for 5 times"):
        fetch(dead_url, ["Q: <answer>72</answer>"], ["Q: "], ["72"])
    assert 4 <= c.seconds < 30
    tok = tokenizer()
    executor = SingleTurnAgentExecutor(remote_rm_url=dead_url + "/get_reward")
    out = asyncio.run(executor.execute("Q: ", "72", SimpleNamespace(max_tokens=64, logprobs=None), 256, tok,
                                       Engine(tok("<answer>72</answer>", add_special_tokens=False)["input_ids"])))
    assert out["reward"] is None and out["scores"] is None


def test_the_documented_flags_are_openrlhfs_argparse_options():
    # train_ppo_ray builds its parser under __main__ and imports ray and vllm: read its source
    import openrlhf.cli

    text = Path(openrlhf.cli.__file__).with_name("train_ppo_ray.py").read_text()
    docs = (REPO / "docs" / "integrations.md").read_text()
    for flag in ("--reward.remote_url", "--data.label_key"):
        assert f'"{flag}"' in text and flag in docs
    assert '"--remote_rm_url"' not in text and '"--label_key"' not in text
