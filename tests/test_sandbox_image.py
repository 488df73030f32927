"""The image recipe is hashed into the tag; warm containers carry the isolation settings."""

from __future__ import annotations

import shutil

from grpo_code.testing import make_backend
import grpo_sandbox.image as image


def test_tag_follows_the_recipe(tmp_path, monkeypatch):
    before, base_before = image.image_tag(), image.base_tag()
    assert before.startswith("grpo-sandbox:") and base_before.startswith("grpo-sandbox-base:")
    copy = tmp_path / "sandbox"
    shutil.copytree(image.HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(image, "HERE", copy)
    monkeypatch.setattr(image, "RECIPE", copy / "recipe")
    assert image.image_tag() == before  # same files, same tag: no rebuild
    (copy / "harness.py").write_text((copy / "harness.py").read_text() + "\n# changed\n")
    assert image.image_tag() != before and image.base_tag() == base_before  # harness: top layer only
    (copy / "recipe" / "rootfs.txt").write_text("suite=bookworm\npackages=python3,curl\n")
    assert image.base_tag() != base_before


def test_container_isolation_settings():
    b = make_backend("docker", parallel=1)
    try:
        b.warm(1)
        c = next(iter(b._idle.values()))[0].container
        c.reload()
        hc = c.attrs["HostConfig"]
        assert hc["NetworkMode"] == "none"
        assert hc["ReadonlyRootfs"] is True
        pinned = {"SYS_RESOURCE"} if b.oom_pinned else set()  # only where the engine can grant it
        assert hc["CapDrop"] == ["ALL"] and set(hc["CapAdd"]) == {"SETUID", "SETGID", "KILL"} | pinned
        assert "no-new-privileges" in hc["SecurityOpt"]
        assert hc["Memory"] > 0 and hc["MemorySwap"] == hc["Memory"]  # no swap beyond the memory limit
        assert 64 <= hc["PidsLimit"] <= 80
        assert hc["NanoCpus"] == 10**9
        assert "size=256m" in hc["Tmpfs"]["/work"] and "size=256m" in hc["Tmpfs"]["/tmp"]
        v = b.run({"code": "import os; print(os.getuid(), os.getgid(), os.getgroups())"})
        uid = int(v["stdout"].split()[0])
        assert uid >= 20000 and v["stdout"].split()[1] == str(uid)  # never root, no supplementary groups
    finally:
        b.close()
    assert b.containers() == 0


def test_containers_do_not_outlive_a_killed_host(tmp_path):
    """SIGKILL the process holding a warm pool: its containers exit and are removed."""
    import signal
    import subprocess
    import sys
    import time

    import docker

    make_backend("docker").close()
    script = ("import sys, time\nfrom grpo_code.backends import create_backend\n"
              "from grpo_plugins import PluginManager\n"
              "b = create_backend('docker', PluginManager(allow=['code']), parallel=2); b.warm(2)\nprint('warm', flush=True)\ntime.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "warm"
        client = docker.from_env()
        owned = {"label": f"grpo-sandbox.owner={p.pid}"}
        # the low-level list: no per-container inspect that could race with the removal
        assert len(client.api.containers(filters=owned)) == 2
        p.send_signal(signal.SIGKILL)
        p.wait()
        for _ in range(100):  # removal is asynchronous in the engine
            if not client.api.containers(all=True, filters=owned):
                break
            time.sleep(0.1)
        assert client.api.containers(all=True, filters=owned) == []
    finally:
        if p.poll() is None:
            p.kill()


def test_unreachable_engine_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    """DOCKER_HOST is honoured; an engine that cannot be reached fails under CI=true, skips otherwise."""
    import pytest

    from grpo_code import testing
    from grpo_code.backends import SandboxUnavailable
    from grpo_code.backends.docker import DockerBackend

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    testing._docker_reason.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="no Docker engine answers"):
            DockerBackend()
        monkeypatch.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception, match="DOCKER_HOST=unix://.*none.sock does not answer"):
            make_backend("docker")
        monkeypatch.setenv("CI", "")
        testing._docker_reason.cache_clear()
        with pytest.raises(pytest.skip.Exception, match="sandbox backend unavailable"):
            make_backend("docker")
    finally:
        testing._docker_reason.cache_clear()
