"""The ``math_verify`` reward: ``verify(parse(gold), parse(completion))`` from the math-verify library."""

from __future__ import annotations

import importlib.util
import threading

from pydantic import Field

from grpo_plugins import MissingDependency, Reward, RewardOptions, RewardResult, Sample

INSTALL_HINT = "math-verify is not installed; run: pip install 'grpo-plugins[math_verify]'"


def available() -> bool:
    """Whether the math-verify library can be found (a broken install counts as missing)."""
    try:
        return importlib.util.find_spec("math_verify") is not None
    except (ImportError, ValueError):
        return False


class MathVerifyUnavailable(MissingDependency, ValueError):
    """The reward was asked for but its library is missing (the message is the fix)."""


class MathVerifyOptions(RewardOptions):
    answer_column: str = Field("answer", min_length=1, description="dataset column holding the gold answer")
    box_gold: bool = Field(False, description="wrap a gold without \\boxed{} in one before parsing (as veRL does)")
    float_rounding: int = Field(6, ge=0, le=30, description="math-verify's float_rounding (decimal places compared)")
    strict: bool = Field(True, description="math-verify's strict (variable names must match)")
    allow_set_relation_comp: bool = Field(False, description="math-verify's allow_set_relation_comp")
    timeout_seconds: int = Field(5, ge=1, le=600, description="math-verify's own parse and verify timeouts "
                                                              "(signal-based: they apply on a main thread)")
    correct: float = Field(1.0, description="value when verify() is true")
    incorrect: float = Field(0.0, description="value when it is false, or when math-verify raised")
    no_answer: float = Field(0.0, description="value when parse() finds nothing in the completion")


class MathVerifyReward(Reward):
    """math-verify's verdict per completion, with statuses correct | incorrect | no_answer | error."""

    name = "math_verify"
    granularity = "outcome"
    Options = MathVerifyOptions
    executor = "process"  # the library's timeouts use SIGALRM, which only a main thread may set
    description = "Hugging Face math-verify: verify(parse(gold), parse(completion)) (extra [math_verify])"

    def __init__(self, options=None):
        super().__init__(options)
        if not available():
            raise MathVerifyUnavailable(INSTALL_HINT)

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        """One verdict per sample; an exception inside math-verify is status error, never raised."""
        import math_verify

        o = self.options
        main = threading.current_thread() is threading.main_thread()
        limit = o.timeout_seconds if main else None  # off a main thread SIGALRM cannot be set
        out = []
        for i, s in enumerate(samples):
            if o.answer_column not in s.columns:
                raise KeyError(f"sample {i} has no gold column {o.answer_column!r}; set option answer_column")
            gold = str(s.columns[o.answer_column])
            if o.box_gold and "\\boxed" not in gold:
                gold = f"\\boxed{{{gold}}}"
            info: dict = {"gold": gold}
            try:
                pred = math_verify.parse(s.text, parsing_timeout=limit)
                info["extracted"] = str(pred[-1]) if pred else None
                if not pred:
                    info["status"] = "no_answer"
                else:
                    ok = math_verify.verify(math_verify.parse(gold, parsing_timeout=limit), pred,
                                            float_rounding=o.float_rounding, strict=o.strict,
                                            allow_set_relation_comp=o.allow_set_relation_comp,
                                            timeout_seconds=limit)
                    info["status"] = "correct" if ok else "incorrect"
            except Exception as exc:  # noqa: BLE001 - the library's failure is reported, not raised
                info.update(status="error", detail=f"{type(exc).__name__}: {exc}"[:300])
            if not main:
                info["bounded"] = False
            values = {"correct": o.correct, "no_answer": o.no_answer}
            out.append(RewardResult(values.get(info["status"], o.incorrect), info=info))
        return out
