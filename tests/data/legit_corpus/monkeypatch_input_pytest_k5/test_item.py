from solution import ask_sum
def test_sum(monkeypatch):
    answers = iter(["5", "10"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert ask_sum() == 15
