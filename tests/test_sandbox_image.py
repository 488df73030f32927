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
        assert hc["CapDrop"] == ["ALL"] and set(hc["CapAdd"]) == {"SETUID", "SETGID", "KILL"}
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
