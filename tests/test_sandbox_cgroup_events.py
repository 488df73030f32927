"""The one OOM-kill counter reader (grpo_sandbox.cgroup_events), used by the in-container server and
the local backend's cgroups, on cgroup v1 and v2 file texts; and the image ships every module the
in-sandbox files import."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from grpo_code.backends.cgroups import RunCgroup
from grpo_sandbox import image
from grpo_sandbox.cgroup_events import V1_FILE, V2_FILE, parse_oom_kills, read_oom_kills

# as the kernel writes them (6.x: v2 memory.events; v1 memory.oom_control since 4.13)
V2_TEXT = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 3\noom_group_kill 0\n"
V1_TEXT = "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"
V1_OLD_TEXT = "oom_kill_disable 0\nunder_oom 0\n"  # before 4.13: no count


def test_v1_and_v2_texts():
    assert parse_oom_kills(V2_TEXT) == 3  # not "oom 2" nor "oom_group_kill 0"
    assert parse_oom_kills(V1_TEXT) == 5
    assert parse_oom_kills(V1_OLD_TEXT) is None and parse_oom_kills("") is None


keys = st.sampled_from(["low", "high", "max", "oom", "oom_group_kill", "oom_kill_disable", "under_oom"])


@given(st.lists(st.tuples(keys, st.integers(0, 2**63))), st.integers(0, 2**63), st.integers(0, 10))
def test_the_oom_kill_line_is_found_among_any_others(others, count, where):
    lines = [f"{k} {v}" for k, v in others]
    lines.insert(min(where, len(lines)), f"oom_kill {count}")
    assert parse_oom_kills("\n".join(lines) + "\n") == count
    assert parse_oom_kills("\n".join(f"{k} {v}" for k, v in others)) is None


def test_read_takes_the_first_file_that_has_a_count(tmp_path):
    old, v2, v1 = tmp_path / "old", tmp_path / "v2", tmp_path / "v1"
    old.write_text(V1_OLD_TEXT)
    v2.write_text(V2_TEXT)
    v1.write_text(V1_TEXT)
    assert read_oom_kills(str(tmp_path / "missing"), str(old), str(v2), str(v1)) == 3
    assert read_oom_kills(str(v1), str(v2)) == 5
    assert read_oom_kills(str(tmp_path / "missing"), str(old)) == 0


def test_the_local_backends_cgroup_reads_its_own_file(tmp_path):
    (tmp_path / V2_FILE).write_text(V2_TEXT)
    (tmp_path / V1_FILE).write_text(V1_TEXT)
    assert RunCgroup({"memory": tmp_path}, v2=True).oom_kills() == 3
    assert RunCgroup({"memory": tmp_path}, v2=False).oom_kills() == 5
    assert RunCgroup({"memory": tmp_path / "gone"}, v2=True).oom_kills() == 0


def test_the_image_ships_every_sandbox_module_its_files_import():
    here = Path(image.__file__).parent
    for name in image.IMAGE_FILES:
        for node in ast.walk(ast.parse((here / name).read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = "grpo_sandbox." + node.module if node.level and node.module else node.module or "grpo_sandbox"
            if module.split(".")[0] != "grpo_sandbox":
                continue
            mods = [module] if module != "grpo_sandbox" else [f"grpo_sandbox.{a.name}" for a in node.names]
            for mod in mods:
                assert f"{mod.split('.')[1]}.py" in image.IMAGE_FILES, f"{name} imports {mod}, not in the image"
    dockerfile = (image.RECIPE / "Dockerfile").read_text()
    assert "COPY {files} /opt/grpo_sandbox/" in dockerfile  # filled from IMAGE_FILES, one list
