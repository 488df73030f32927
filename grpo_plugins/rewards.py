"""The reward API: samples in, one RewardResult per sample out.

A reward is a class with a ``name``, a ``granularity`` ("outcome" scores a whole completion,
"step" scores character spans of it), an ``Options`` model and a ``score(samples)`` method.
TRL-style reward functions convert both ways (``function_reward`` / ``as_trl_reward_func``).
``RewardConfig`` is one reward in a run: which one, its weight, options and error policy.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, ClassVar, Hashable, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import UserError

Granularity = Literal["outcome", "step"]
Executor = Literal["thread", "process"]
OnError = Literal["raise", "nan", "zero"]


class RewardOptions(BaseModel):
    """Base for reward option models: typed, defaults documented, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OptionsError(UserError, ValueError):
    """Options that do not fit a reward's Options model; the message names every bad key."""

    def __init__(self, reward: str, problems: list[tuple[str, str]]):
        self.reward = reward
        self.problems = problems  # [(option path, message)]
        lines = [f"{reward}.{path}: {msg}" if path else f"{reward}: {msg}" for path, msg in problems]
        super().__init__("invalid options for reward " + repr(reward) + ":\n  " + "\n  ".join(lines))


def describe_validation_error(model: type[BaseModel], err: ValidationError) -> list[tuple[str, str]]:
    """Turn a pydantic error into (dotted path, human message) pairs, listing valid keys for typos."""
    problems = []
    valid = ", ".join(sorted(model.model_fields)) or "(none)"
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            msg = f"unknown option; valid options: {valid}"
        else:
            field_name = e["loc"][0] if e["loc"] else None
            expected = ""
            if isinstance(field_name, str) and field_name in model.model_fields:
                expected = f" (expected {type_name(model.model_fields[field_name].annotation)})"
            got = f" ({e.get('input')!r})" if "got" in e["msg"] else f", got {e.get('input')!r}"
            msg = f"{e['msg']}{expected}{got}"
        problems.append((path, msg))
    return problems


def type_name(annotation: Any) -> str:
    """A short readable name for a type annotation (``float``, ``Literal['a', 'b']``, ...)."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def options_schema(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Options of a reward as [{name, type, default, description}] for ``grpo-plugins rewards``."""
    out = []
    for name, f in model.model_fields.items():
        default = None if f.is_required() else f.get_default(call_default_factory=True)
        out.append(
            {
                "name": name,
                "type": type_name(f.annotation),
                "default": default,
                "required": f.is_required(),
                "description": f.description or "",
            }
        )
    return out


@dataclass
class Sample:
    """One completion to score: prompt, completion (text or chat messages), token ids, group, columns."""

    prompt: Any
    completion: Any
    completion_ids: list[int] | None = None
    group: int | None = None
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The completion as plain text (assistant messages joined for conversational completions)."""
        return message_text(self.completion)

    @property
    def prompt_text(self) -> str:
        """The prompt as plain text (all message contents joined for conversational prompts)."""
        return message_text(self.prompt, roles=None)


SAMPLE_FIELDS = ("prompt", "completion", "completion_ids")


def sample_from_record(record: dict[str, Any]) -> Sample:
    """A Sample from a JSONL/dataset row: prompt, completion, optional completion_ids; the rest are columns."""
    return Sample(
        prompt=record.get("prompt"),
        completion=record["completion"],
        completion_ids=record.get("completion_ids"),
        group=record.get("group"),
        columns={k: v for k, v in record.items() if k not in SAMPLE_FIELDS},
    )


def message_text(value: Any, roles: tuple[str, ...] | None = ("assistant",)) -> str:
    """Text of a string or of a list of chat messages ({role, content}), filtered by role."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    parts = []
    for m in value:
        if not isinstance(m, dict):
            raise TypeError(f"expected a string or chat messages, got a list item of type {type(m).__name__}")
        if roles is None or m.get("role", "assistant") in roles:
            content = m.get("content", "")
            if isinstance(content, list):  # multimodal content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(str(content))
    return "\n".join(parts)


@dataclass
class RewardResult:
    """A reward's verdict on one sample: an outcome value, step spans, or both, plus info."""

    value: float | None = None
    steps: list[tuple[int, int, float]] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # numbers become floats; anything else (a string) is kept so the host can name the plugin
        if isinstance(self.value, numbers.Real):
            self.value = float(self.value)
        if self.steps is not None:
            self.steps = [(int(s), int(e), float(v) if isinstance(v, numbers.Real) else v)
                          for s, e, v in self.steps]

    @property
    def applicable(self) -> bool:
        """False when the reward does not apply (None) or failed under the ``nan`` policy."""
        return self.value is not None and not math.isnan(self.value)


class Reward:
    """Base class for rewards. Subclasses set ``name``, ``granularity``, ``Options``, ``score``.

    ``score`` may be a plain method or ``async def``. Set ``executor = "process"`` for CPU-bound
    rewards that hold the GIL; the host then runs ``score`` in a worker process (the reward and
    samples must pickle).
    """

    name: ClassVar[str] = ""
    granularity: ClassVar[Granularity] = "outcome"
    Options: ClassVar[type[RewardOptions]] = RewardOptions
    executor: ClassVar[Executor] = "thread"
    description: ClassVar[str] = ""
    #: the PluginManager that created this reward (set by ``create_reward``; None when built directly)
    manager: Any = None

    def __init__(self, options: RewardOptions | dict[str, Any] | None = None):
        self.options = self.parse_options(options)

    @classmethod
    def parse_options(cls, options: RewardOptions | dict[str, Any] | None) -> RewardOptions:
        """Validate a dict of options against ``cls.Options``; raise OptionsError naming each problem."""
        if isinstance(options, cls.Options):
            return options
        try:
            return cls.Options.model_validate(dict(options or {}))
        except ValidationError as err:
            raise OptionsError(cls.name, describe_validation_error(cls.Options, err)) from None

    def score(self, samples: list[Sample]) -> list[RewardResult]:  # pragma: no cover - abstract
        """Score a batch; return exactly one RewardResult per sample, in order."""
        raise NotImplementedError

    def required_columns(self) -> list[str] | None:
        """Dataset columns every row must have for this reward (with its options); None = not declared.

        ``check``, ``train`` and ``score`` refuse rows without them before scoring (``serve`` infers
        them from ``*_column`` options when a reward declares none)."""
        return None

    def close(self) -> None:
        """Release pools, containers or models the reward holds (called by the host on close)."""

    def __getstate__(self) -> dict[str, Any]:
        # a process-executor reward travels to its worker without the plugin manager that made it
        state = self.__dict__.copy()
        state.pop("manager", None)
        return state

    # Voting (optional; used by evaluation's maj@k): a reward that can say which answer a sample
    # states overrides ``answer_key``; ``same_answer`` groups keys that differ as text but are equal.
    def answer_key(self, sample: Sample, result: RewardResult) -> Hashable | None:
        """The answer ``sample`` states, as a hashable key for majority voting; None = no answer."""
        return None

    def same_answer(self, a: Hashable, b: Hashable) -> bool:
        """Whether two answer keys are the same answer (called only for keys that differ)."""
        return a == b


class RewardConfig(BaseModel):
    """One reward in a run: which one, its weight, options, error policy and time limit.

    ``options`` keeps what the config says (a resumed run compares it); ``options_for`` parses it
    once against the reward's class and hands out that same object afterwards."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="registered reward name (see `grpo-plugins rewards`)")
    weight: float = Field(1.0, description="weight in the summed reward")
    options: dict[str, Any] = Field(default_factory=dict, description="the reward's own options")
    on_error: OnError = Field("raise", description="raise | nan (not applicable) | zero")
    timeout: float | None = Field(120.0, gt=0, description="seconds for one batch; null = no limit")
    label: str | None = Field(None, description="key in outputs and metrics; defaults to name")
    # (options as parsed, the dict they were parsed from): reused while ``options`` still equals it
    _parsed: tuple[dict[str, Any], RewardOptions] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _label(self):
        if self.label is None:
            self.label = self.name
        return self

    def options_for(self, cls: type[Reward]) -> RewardOptions:
        """``options`` parsed by ``cls.Options`` (OptionsError naming each problem), parsed only once."""
        if self._parsed is not None and type(self._parsed[1]) is cls.Options and self._parsed[0] == self.options:
            return self._parsed[1]
        parsed = cls.parse_options(self.options)
        # a copy: a later change to ``options`` (model_copy(update=...) or in place) is parsed afresh
        self._parsed = (copy.deepcopy(self.options), parsed)
        return parsed


def can_vote(reward: Reward) -> bool:
    """Whether a reward takes part in majority voting (it overrides ``Reward.answer_key``)."""
    return type(reward).answer_key is not Reward.answer_key


def validate_reward_class(cls: Any) -> None:
    """Raise TypeError when a registered class does not follow the reward contract."""
    if not (isinstance(cls, type) and issubclass(cls, Reward)):
        raise TypeError(f"{cls!r} is not a subclass of grpo_plugins.Reward")
    if not isinstance(cls.name, str) or not cls.name or not cls.name.replace("_", "").replace("-", "").isalnum():
        raise TypeError(f"{cls.__qualname__}.name must be a non-empty identifier-like string, got {cls.name!r}")
    if cls.granularity not in ("outcome", "step"):
        raise TypeError(f"{cls.__qualname__}.granularity must be 'outcome' or 'step', got {cls.granularity!r}")
    if not (isinstance(cls.Options, type) and issubclass(cls.Options, BaseModel)):
        raise TypeError(f"{cls.__qualname__}.Options must be a pydantic model (subclass RewardOptions)")
    if cls.Options.model_config.get("extra") != "forbid":
        raise TypeError(f"{cls.__qualname__}.Options must reject unknown keys (subclass RewardOptions)")
    if cls.executor not in ("thread", "process"):
        raise TypeError(f"{cls.__qualname__}.executor must be 'thread' or 'process', got {cls.executor!r}")
    if cls.score is Reward.score:
        raise TypeError(f"{cls.__qualname__} does not implement score(samples)")


def run_score(reward: Reward, samples: list[Sample]) -> list[RewardResult]:
    """Call ``reward.score``, running it to completion when it is a coroutine function."""
    out = reward.score(samples)
    if inspect.isawaitable(out):
        out = asyncio.run(_await(out))
    return list(out)


async def _await(aw):
    return await aw


# --- TRL interop --------------------------------------------------------------------------------
