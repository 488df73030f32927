"""The ``code`` reward: run the completion's program against the sample's tests in a sandbox."""

from __future__ import annotations

import threading
from typing import Any, Literal

from pydantic import Field, field_validator

from grpo_plugins import Reward, RewardOptions, RewardResult, Sample

from .backends import SandboxBackend, SandboxUnavailable, create_backend, merge_limits
from .program import extract_program
from .tests_format import check_language, normalize_tests


class CodeOptions(RewardOptions):
    backend: str = Field(
        "docker", description="sandbox backend: docker, local (bubblewrap), auto (docker, else local), or a plugin's")
    language: Literal["python", "cpp"] = Field(
        "python", description="the program's language: python, or cpp (g++ -O2 -std=c++17; stdio tests)")
    binary: bool = Field(False, description="1/0 for all-tests-passed instead of the fraction passed")
    tests: dict[str, Any] | None = Field(None, description="tests for every sample when a sample has no tests column")
    tests_column: str = Field("tests", description="dataset column holding each sample's tests spec")
    limits: dict[str, float] = Field(default_factory=dict,
                                     description="default limits: wall_s, cpu_s, memory_mb, pids, output_bytes, "
                                                 "disk_mb")
    parallel: int | None = Field(None, ge=1, description="programs run at once (default: CPU count)")

    @field_validator("limits")
    @classmethod
    def _known_limits(cls, v: dict[str, float]) -> dict[str, float]:
        merge_limits(v)  # unknown or non-positive limits: the message lists the valid ones
        return v


class CodeReward(Reward):
    """Fraction of tests passed by the last fenced block of the language, run in an isolated sandbox."""

    name = "code"
    granularity = "outcome"
    Options = CodeOptions
    description = ("sandboxed code tests (assert / call / stdio / unittest / pytest / APPS; Python or C++): "
                   "fraction passed, or 1/0 with binary")

    def __init__(self, options=None):
        super().__init__(options)
        self._backend: SandboxBackend | None = None
        self._lock = threading.Lock()
        if self.options.tests is not None:
            normalize_tests(self.options.tests, "code reward options", "tests")

    @property
    def backend(self) -> SandboxBackend:
        """The sandbox backend, created (and the image built if missing) on first use."""
        with self._lock:
            if self._backend is None:
                if self.manager is None:
                    raise SandboxUnavailable("the code reward has no plugin manager to find its sandbox backend in: "
                                             "create it with PluginManager.create_reward('code', options)")
                o = self.options
                kw = {"limits": o.limits, "parallel": o.parallel}
                if o.backend == "auto":
                    try:
                        self._backend = create_backend("docker", self.manager, **kw)
                    except SandboxUnavailable:
                        self._backend = create_backend("local", self.manager, **kw)
                else:
                    self._backend = create_backend(o.backend, self.manager, **kw)
            return self._backend

    def required_columns(self) -> list[str]:
        """The tests column, unless the options give tests for every sample."""
        return [self.options.tests_column] if self.options.tests is None else []

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        jobs, index = [], []
        results: list[RewardResult | None] = [None] * len(samples)
        for i, s in enumerate(samples):
            spec = s.columns.get(self.options.tests_column)
            if spec is None:
                spec = self.options.tests
            if spec is None:
                results[i] = RewardResult(None, info={"status": "untested"})  # no tests column: no verdict
                continue
            tests = normalize_tests(spec, f"sample {i}", self.options.tests_column)
            lang = check_language(self.options.language, tests, f"sample {i}", "code.language")
            jobs.append({"code": extract_program(s.text, lang), "tests": tests, "language": lang})
            index.append(i)
        for i, verdict in zip(index, self.backend.run_many(jobs)):
            total = verdict.get("total") or 0
            ok = verdict["status"] == "passed"
            value = float(ok) if self.options.binary else (verdict["passed"] / total if total else 0.0)
            results[i] = RewardResult(value, info={
                "status": verdict["status"], "passed": verdict["passed"], "total": total,
                "per_test": verdict.get("per_test", []), "stderr": verdict.get("stderr", "")[-500:],
                **({"error": verdict["error"]} if verdict.get("error") else {})})
        return results

    def close(self) -> None:
        """Remove the backend's warm containers."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None
