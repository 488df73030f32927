"""Build the sandbox image locally (no registry is reachable): debootstrap a minimal Debian with
python3 into a tarball, ``docker import`` it as the base, then add the harness files on top.
Both tags carry a hash of what went into them, so a rebuild happens only when those files change.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "recipe"
BASE_REPO = "grpo-sandbox-base"
REPO = "grpo-sandbox"
# the in-sandbox files (stdlib only): the image's COPY line and the local backend's copy both use this list
IMAGE_FILES = ("__init__.py", "harness.py", "compare.py", "asserts.py", "process.py", "runner.py", "tester.py",
               "zygote.py", "server.py", "cgroup_events.py")


def _digest(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def base_tag() -> str:
    """Tag of the base image: hash of the rootfs recipe."""
    return f"{BASE_REPO}:{_digest([RECIPE / 'build-rootfs.sh', RECIPE / 'rootfs.txt'])}"


def image_tag() -> str:
    """Tag of the sandbox image: hash of the whole recipe and the in-sandbox files."""
    files = [p for p in RECIPE.iterdir() if p.is_file()] + [HERE / f for f in IMAGE_FILES]
    return f"{REPO}:{_digest(files)}"


def image_exists(client, tag: str) -> bool:
    """Whether the engine has ``tag``."""
    import docker

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_base(client, log=print) -> str:
    """debootstrap the rootfs (root + debootstrap needed) and import it into the engine."""
    tag = base_tag()
    with tempfile.TemporaryDirectory(prefix="grpo-sandbox-", dir="/var/tmp") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        log(f"sandbox: debootstrapping a minimal Debian with python3 (a few minutes) -> {tag}")
        subprocess.run(["bash", str(RECIPE / "build-rootfs.sh"), str(tarball)], check=True)
        repo, version = tag.split(":")
        with tarball.open("rb") as fh:
            client.api.import_image_from_data(fh, repository=repo, tag=version)
    if not image_exists(client, tag):
        raise RuntimeError(f"docker import did not produce {tag}")
    return tag


def build_image(client=None, force: bool = False, log=print) -> str:
    """Ensure the sandbox image exists (building the base first if needed); return its tag."""
    import docker

    client = client or docker.from_env()
    tag = image_tag()
    if not force and image_exists(client, tag):
        return tag
    base = base_tag()
    if force or not image_exists(client, base):
        build_base(client, log)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = (RECIPE / "Dockerfile").read_text().replace("{base}", base)
        dockerfile = dockerfile.replace("{files}", " ".join(IMAGE_FILES)).encode()
        _add(tar, "Dockerfile", dockerfile)
        for name in IMAGE_FILES:
            _add(tar, name, (HERE / name).read_bytes())
    context.seek(0)
    log(f"sandbox: adding the harness -> {tag}")
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True)
    _prune(client, keep={tag, base})
    return tag


def _prune(client, keep: set[str], newest: int = 4) -> None:
    """Remove older sandbox tags (every recipe change makes one), keeping the ``newest`` few per
    repository, so checkouts of different versions sharing one engine do not delete each other's."""
    for repo in (REPO, BASE_REPO):
        imgs = sorted(client.images.list(name=repo), key=lambda i: i.attrs.get("Created", ""), reverse=True)
        for img in imgs[newest:]:
            for t in img.tags:
                if t not in keep:
                    try:
                        client.images.remove(t)
                    except Exception:  # still used by a container, or removed meanwhile
                        pass


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid = len(data), 0o644, 0, 0
    tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    print(build_image())
