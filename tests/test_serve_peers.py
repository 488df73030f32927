"""The reward server as OpenRLHF and slime meet it, over real HTTP on loopback: end-of-sequence text
taken from a tokenizer on disk, bad rows answered without a retry storm, and errors someone can see
(one log line per failed request or row, counters on /metrics)."""

from __future__ import annotations

import json
import logging

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


# --- bad rows -----------------------------------------------------------------------------------

def post_like_the_peers(url, route, payloads):
    """Each payload posted the way OpenRLHF's ``_post_request`` and slime's ``remote_rm`` do (aiohttp,
    ``raise_for_status``, then ``await resp.json()``); a non-2xx raises, where both would retry."""
    aiohttp = pytest.importorskip("aiohttp")
    import asyncio

    async def main():
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async def one(payload):
                async with session.post(url + route, json=payload) as resp:
                    resp.raise_for_status()
                    return await resp.json()
            return await asyncio.gather(*[one(x) for x in payloads])

    return asyncio.run(main())


@pytest.mark.parametrize("math_policy", ["zero", "raise"])
def test_a_row_without_gold_pays_nothing_by_default_with_a_200(math_policy):
    cfg = {"rewards": [{"name": "math", "on_error": math_policy, "options": {"workers": 1}},
                       {"name": "format", "weight": 0.1, "on_error": "zero",
                        "options": {"pattern": r"<answer>.*</answer>"}}]}
    good = "<answer>72</answer><|im_end|>"
    with running(cfg) as url:
        s = post_like_the_peers(url, "/slime", [{"prompt": "Q:", "response": good, "label": None},
                                                {"prompt": "Q:", "response": good, "label": "72"}])
        o, = post_like_the_peers(url, "/get_reward", [{"query": ["Q:" + good] * 3, "prompts": ["Q:"] * 3,
                                                      "labels": ["72", None, "72"]}])
        unlabelled, = post_like_the_peers(url, "/get_reward", [{"query": ["Q:" + good], "prompts": ["Q:"]}])
    # format no longer pays a row slime sent without its label (it used to: 0.1, silently)
    assert s[0]["reward"] == 0.0 and s[0]["status"] == "no_label" and "no gold answer" in s[0]["error"]
    assert s[1]["reward"] == pytest.approx(1.1) and s[1]["status"] == "ok" and "error" not in s[1]
    assert o["rewards"] == pytest.approx([1.1, 0.0, 1.1]) and o["status"] == ["ok", "no_label", "ok"]
    assert o["errors"][0] is None and ("row 1: no gold answer (field 'labels' missing or null; it fills column "
                                       "'answer')") in o["errors"][1]
    assert "(field 'label' missing or null; it fills column 'answer')" in s[0]["error"]
    assert all(isinstance(v, float) for vals in o["extra_logs"].values() for v in vals)  # OpenRLHF tensors them
    # a request without labels at all (OpenRLHF without --data.label_key) is told the field's name
    assert unlabelled["rewards"] == [0.0] and "row 0: no gold answer (field 'labels'" in unlabelled["errors"][0]


def test_pay_without_label_names_the_rewards_that_still_score():
    cfg = dict(EOS_CFG, serve={"pay_without_label": ["format"]})
    with running(cfg) as url:
        s, = post_like_the_peers(url, "/slime", [{"prompt": "Q:", "response": "<answer>9</answer>", "label": None}])
        r = httpx.post(url + "/score", json={"rows": [{"completion": "<answer>9</answer>", "answer": None}]})
    assert s["reward"] == pytest.approx(0.1) and s["status"] == "no_label"
    assert s["rewards"] == {"math": None, "format": 1.0}  # math has on_error raise: it does not apply
    # /score keeps raise's 422 for a reward that does not pay without gold, naming the row
    assert r.status_code == 422 and r.json()["row"] == 0 and r.json()["reward"] == "math"
    assert "no gold answer" in r.json()["error"]


def test_pay_without_label_must_name_configured_rewards():
    from grpo_plugins.errors import SettingError
    from grpo_plugins.serve import ServeConfig, create_app
    from serve_helpers import manager

    cfg = ServeConfig.model_validate(dict(EOS_CFG, serve={"pay_without_label": ["fromat"]}))
    with pytest.raises(SettingError, match=r"^serve\.pay_without_label: no configured reward labelled 'fromat'"):
        create_app(cfg, manager())


def test_a_reward_raising_on_one_row_fails_that_row_only_on_the_peer_routes():
    with running({"rewards": [{"name": "boom"}]}) as url:  # on_error: raise
        o, = post_like_the_peers(url, "/get_reward", [{"query": ["fine", "boom", "fine"]}])
        s, = post_like_the_peers(url, "/slime", [{"prompt": "", "response": "boom", "label": "1"}])
        r = httpx.post(url + "/score", json={"rows": [{"completion": "fine"}, {"completion": "boom"}]})
    assert o["rewards"] == [1.0, 0.0, 1.0] and o["status"] == ["ok", "error", "ok"]
    assert o["errors"][1] == "reward 'boom' (plugin 'test_rewards') failed on sample 1: RuntimeError: exploded on purpose"
    assert s["reward"] == 0.0 and s["status"] == "error" and s["failed"] == "boom"
    assert r.status_code == 422 and r.json()["row"] == 1


def test_a_bad_gold_is_named_once_with_its_row():
    cfg = {"rewards": [{"name": "math", "options": {"workers": 1}}]}
    rows = [{"completion": "4", "answer": "4"}, {"completion": "4", "answer": [1, 2]}, {"completion": "4", "answer": "4"}]
    with running(cfg) as url:
        r = httpx.post(url + "/score", json={"rows": rows})
    assert r.status_code == 422 and r.json()["row"] == 1
    # one index, the host's: the reward scored the row alone and no longer adds its own "sample 0"
    assert r.json()["error"] == ("reward 'math' (plugin 'math') failed on sample 1: ValueError: column 'answer': "
                                 "gold answer must be a number or a string, got list")


@pytest.mark.parametrize("route", ["/get_reward", "/slime"])
@pytest.mark.parametrize("body, needle", [(b'{"query": [', "malformed JSON at line 1 column 12"),
                                          (b"query=a&labels=b", "malformed JSON at line 1 column 1"),
                                          (b"\xff\xfe{}", "request body is not UTF-8 JSON (byte 0)")])
def test_an_unreadable_peer_body_is_a_400_with_one_line(caplog, route, body, needle):
    caplog.set_level(logging.INFO, logger="grpo_plugins.serve")
    with running(EOS_CFG) as url:
        r = httpx.post(url + route, timeout=30, content=body, headers={"content-type": "application/json"})
    lines = [x.getMessage() for x in caplog.records if x.name == "grpo_plugins.serve"]
    assert r.status_code == 400 and needle in r.json()["error"] and "\n" not in r.json()["error"]
    assert len(lines) == 1 and f"{route} 400" in lines[0] and needle in lines[0] and "\n" not in lines[0]
