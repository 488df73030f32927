def test_length(register_plugin, score_samples):
    import grpo_length_plugin

    register_plugin(grpo_length_plugin)  # works installed or not; unregistered when the test ends
    [r] = score_samples("length", [{"prompt": "p", "completion": "x" * 50}], target=100)
    assert r.value == 0.5 and r.info == {"chars": 50}
