"""Built-in ``format`` plugin: regex format, tag-count partial credit, language consistency,
DAPO overlong penalty. Registered through the same entry-point group as third-party plugins."""

from grpo_plugins import hookimpl

from .rewards import LanguageReward, OverlongReward, RegexFormatReward, TagCountReward


@hookimpl
def register_rewards(register):
    register(RegexFormatReward)
    register(TagCountReward)
    register(LanguageReward)
    register(OverlongReward)
