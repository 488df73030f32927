"""The peers' own client code against a real ``grpo-plugins serve`` on loopback: collected only by
scripts/test-peers.sh (it sets GRPO_PEER_TESTS=1 in a venv holding OpenRLHF, veRL and slime's rm_hub),
never by the main ``pytest`` run, whose environment has none of them."""

from __future__ import annotations

import os

import pytest

if os.environ.get("GRPO_PEER_TESTS") != "1":
    collect_ignore_glob = ["*.py"]

from peer_helpers import SERVE_CONFIG  # noqa: E402


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """``grpo-plugins serve`` in a subprocess on 127.0.0.1:<free port>; yields its base URL."""
    from serve_helpers import serve_process

    cfg = tmp_path_factory.mktemp("serve") / "rewards.yaml"
    cfg.write_text(SERVE_CONFIG)
    with serve_process(cfg) as (proc, url):
        yield url
        assert proc.poll() is None, "the server died during the peer tests"


@pytest.fixture
def dead_url(tmp_path):
    """A loopback URL nobody listens on (a port bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
