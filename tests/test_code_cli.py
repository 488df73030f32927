"""``grpo-plugins sandbox exec`` / ``sandbox build``: the JSONL contract, input order, errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from grpo_plugins.cli import build_cli
from grpo_plugins.manager import PluginManager
from grpo_code.testing import make_backend

FIELDS = {"status", "passed", "total", "stdout", "stderr", "exit_code", "duration_s", "per_test"}


def invoke(args):
    pm = PluginManager(allow=["code"])
    return CliRunner().invoke(build_cli(pm), args, obj={"manager": pm})


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


@pytest.mark.parametrize("backend", ["local", "docker"])
def test_exec_contract(tmp_path, backend):
    make_backend(backend).close()
    rows = [
        {"code": "import time; time.sleep(0.3); print('first')"},
        {"code": "print(input()[::-1])", "stdin": "abc\n"},
        {"code": "raise ValueError('boom')"},
        {"code": "while True: pass", "limits": {"wall_s": 1.5, "cpu_s": 1}},
        {"code": "def f(a):\n    return a * 2", "tests": {"kind": "call", "fn_name": "f",
                                                          "cases": [{"args": [2], "expected": 4},
                                                                    {"args": [3], "expected": 7}]}},
        {"code": "print(int(input()) + 1)", "tests": {"inputs": ["1\n", "2\n"], "outputs": ["2", "3"]}},
        {"code": "import sys; sys.stdout.write('x' * 100000)", "limits": {"output_bytes": 1000}},
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    res = invoke(["sandbox", "exec", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                  "--backend", backend, "--parallel", "2"])
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["status"] for o in out] == ["passed", "passed", "runtime_error", "timeout", "failed", "passed",
                                         "output_limit"]
    assert all(FIELDS <= set(o) for o in out)
    assert out[0]["stdout"] == "first\n" and out[1]["stdout"] == "cba\n"
    assert "ValueError: boom" in out[2]["stderr"] and out[2]["exit_code"] == 1
    assert (out[4]["passed"], out[4]["total"]) == (1, 2)
    assert (out[5]["passed"], out[5]["total"]) == (2, 2)
    assert len(out[6]["stdout"]) == 1000


@pytest.mark.parametrize("row, message", [
    ('{"code": 1}', "in.jsonl:2: code: expected a string"),
    ('{"code": "x", "limits": {"wall": 1}}', "in.jsonl:2: limits: unknown limit 'wall'"),
    ('{"code": "x", "tests": {"kind": "call", "fn_name": "f", "cases": [{"args": 1, "expected": 1}]}}',
     "in.jsonl:2: tests.cases[0].args: expected a list"),
    ('{"cod": "x"}', "in.jsonl:2: missing field 'code'"),
    ('{"code": "x",', "in.jsonl:2: invalid JSON"),
    ('{"code": "x", "stdn": ""}', "in.jsonl:2: stdn: unknown field"),
])
def test_exec_errors_name_file_line_field(tmp_path, row, message):
    (tmp_path / "in.jsonl").write_text('{"code": "print(1)"}\n' + row + "\n")
    res = invoke(["sandbox", "exec", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                  "--backend", "local"])
    assert res.exit_code != 0
    assert message in res.output, res.output
    assert not (tmp_path / "o.jsonl").exists()


def test_exec_rejects_bad_default_limit(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"code": "print(1)"}\n')
    res = invoke(["sandbox", "exec", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                  "--limit", "memory=5"])
    assert res.exit_code != 0 and "unknown limit 'memory'" in res.output


def test_build_prints_the_hash_tag():
    make_backend("docker").close()
    res = invoke(["sandbox", "build"])
    assert res.exit_code == 0, res.output
    from grpo_sandbox.image import image_tag

    assert res.output.strip().splitlines()[-1] == image_tag()


def test_exec_finds_backends_in_the_clis_manager(tmp_path):
    """A backend from a ``--plugin`` file: exec looks in the manager the CLI loaded it into."""
    (tmp_path / "echo_backend.py").write_text(
        "from grpo_plugins import hookimpl\n"
        "from grpo_code.backends import SandboxBackend, error_verdict\n"
        "class Echo(SandboxBackend):\n"
        "    def run(self, job):\n"
        "        return {**error_verdict(''), 'status': 'passed', 'stdout': job['code']}\n"
        "@hookimpl\n"
        "def register_sandbox_backends(register):\n"
        "    register('echo', Echo)\n")
    write_jsonl(tmp_path / "in.jsonl", [{"code": "hello"}])
    res = invoke(["--plugin", str(tmp_path / "echo_backend.py"), "sandbox", "exec", "--backend", "echo",
                  "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")])
    assert res.exit_code == 0, res.output
    [out] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert (out["status"], out["stdout"]) == ("passed", "hello")
