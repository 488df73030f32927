"""The code sandbox: image recipe and in-sandbox harness (importable as ``grpo_sandbox``)."""
