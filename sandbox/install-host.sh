#!/usr/bin/env bash
# The code sandbox's system parts on a fresh Debian/Ubuntu machine (run by scripts/install.sh):
# Docker engine, bubblewrap, libseccomp2, debootstrap, python3-pytest and g++ (the local backend's
# seccomp filter, pytest tests and C++) from apt when missing, dockerd started when no engine
# answers (and waited for), then the sandbox image built unless its tagged version exists.
# Env: GRPO_SANDBOX_NO_DOCKER=1 skips the engine and the image (bubblewrap only).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
# the local backend runs candidates with the system interpreter (a pyenv/venv one under /root is
# out of the unprivileged sandbox's reach)
[ -x /usr/bin/python3 ] || need+=(python3)
# the trusted tester runs pytest-format tests with the system interpreter; C++ compiles with g++
/usr/bin/python3 -c 'import pytest' 2>/dev/null || need+=(python3-pytest)
command -v g++ >/dev/null || need+=(g++)
# the local backend's seccomp filter is compiled with libseccomp
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || need+=(libseccomp2)
if [ "${GRPO_SANDBOX_NO_DOCKER:-0}" != 1 ]; then
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "sandbox: apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ "${GRPO_SANDBOX_NO_DOCKER:-0}" = 1 ] && { echo "sandbox: docker skipped"; exit 0; }

# start the engine when none answers (no systemd on CI machines and containers)
"$PY" -m grpo_sandbox.engine --start
"$PY" -m grpo_sandbox.image
