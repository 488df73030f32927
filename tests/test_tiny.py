"""The tiny on-disk tokenizer the demo and tests build: one token per character, exact offsets."""

from grpo_plugins.grpo.tiny import build_tokenizer


def test_every_character_is_one_token_with_exact_offsets():
    tok = build_tokenizer()
    text = "12+3=?\n<think>a\n\nb</think><answer>15</answer>"
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    assert tok.unk_token_id not in enc["input_ids"]  # newlines are real tokens, not <unk>
    pieces = [text[s:e] for s, e in enc["offset_mapping"]]
    assert "".join(pieces) == text
    assert pieces.count("\n") == 3 and "<think>" in pieces and "</answer>" in pieces
    assert tok.decode(enc["input_ids"]) == text
