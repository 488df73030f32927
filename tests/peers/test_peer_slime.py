"""slime's own reward client (third_party/slime_rm_hub: slime/rollout/rm_hub/__init__.py at the
pinned commit) against ``grpo-plugins serve``: ``async_rm`` and ``batched_async_rm`` with
``--rm-type remote_rm`` (so ``remote_rm``), and ``remote_rm`` itself for the server-down path."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import pytest
from peer_helpers import EOS_TEXTS, REPO, Clock, answers, requests_seen

from slime.rollout import rm_hub
from slime.utils.types import Sample


def test_the_pinned_copy():
    assert rm_hub.__file__.startswith(str(REPO / "third_party" / "slime_rm_hub"))
    assert "624b824a898ab0ec1fcb4d373004c7f3852bf515" in (REPO / "third_party/slime_rm_hub/PROVENANCE").read_text()


def args(url):
    """slime's parsed arguments, as far as rm_hub reads them (--rm-type, --rm-url, --custom-rm-path)."""
    return SimpleNamespace(rm_type="remote_rm", rm_url=url + "/slime", custom_rm_path=None)


def run(coro):
    """One event loop per call, and rm_hub's module-wide aiohttp session closed with it (it is bound
    to the loop that made it)."""
    async def main():
        try:
            return await coro
        finally:
            if rm_hub._shared_session is not None:
                await rm_hub._shared_session.close()
            rm_hub._shared_session = None

    return asyncio.run(main())


def sample(response, label="72"):
    return Sample(prompt="Q: 36+36? ", response=response, label=label)


@pytest.mark.parametrize("eos", EOS_TEXTS)
def test_async_rm_pays_1_1_for_a_response_ending_in_eos_text(server, eos):
    before = requests_seen(server, "/slime")
    out = run(rm_hub.async_rm(args(server), sample(f"<answer>72</answer>{eos}")))
    # slime keeps the whole JSON as sample.reward; --reward-key reward picks the total
    assert out["reward"] == pytest.approx(1.1) and out["rewards"] == {"math": 1.0, "format": 1.0}
    assert out["status"] == "ok"
    assert requests_seen(server, "/slime") == before + 1


def test_batched_async_rm_scores_a_group_one_request_per_sample(server):
    before = requests_seen(server, "/slime")
    group = [sample("<answer>72</answer><|im_end|>"), sample("<answer>71</answer><|eot_id|>"),
             sample("72</s>")]
    out = run(rm_hub.batched_async_rm(args(server), group))
    assert [o["reward"] for o in out] == pytest.approx([1.1, 0.1, 1.0])
    assert requests_seen(server, "/slime") == before + 3


@pytest.mark.parametrize("label", [None, ""], ids=["label-none", "label-empty"])
def test_a_sample_without_gold_is_answered_once_with_its_status(server, label):
    before = requests_seen(server, "/slime")
    out = run(rm_hub.async_rm(args(server), sample("<answer>72</answer><|im_end|>", label=label)))
    if label is None:  # slime sends label null for a sample without one: no_label, nothing pays
        assert out["status"] == "no_label" and out["reward"] == 0.0 and "'label'" in out["error"]
    else:  # an empty gold is a gold: math finds 72 wrong, format pays
        assert out["status"] == "ok" and out["reward"] == pytest.approx(0.1)
    assert requests_seen(server, "/slime") == before + 1  # a 200: remote_rm's 10-try backoff never runs


def test_a_400_is_retried_by_remote_rm(server):
    # a body the server cannot use is still a 400; remote_rm's raise_for_status retries it as any error
    before = answers(server).get(("/slime", "400"), 0.0)
    with pytest.raises(aiohttp.ClientResponseError, match="400"):
        run(rm_hub.remote_rm(args(server), Sample(prompt="Q: ", response=None, label="72"), max_retries=2))
    assert answers(server).get(("/slime", "400"), 0.0) == before + 2


def test_server_down_is_slimes_own_error(dead_url):
    # async_rm has no retry setting (remote_rm's default 10 tries back off about 150 s); remote_rm's
    # own max_retries keyword is the only knob, so the down path is remote_rm(..., max_retries=2)
    with Clock() as c, pytest.raises(aiohttp.ClientConnectionError):
        run(rm_hub.remote_rm(args(dead_url), sample("<answer>72</answer>"), max_retries=2))
    assert 1 <= c.seconds < 10  # one backoff of min(2**0, 30) + random() seconds
