from solution import mode, workers
def test_env(monkeypatch):
    monkeypatch.setenv("APP_MODE", "prod2")
    assert mode() == "prod2"
def test_default(monkeypatch):
    monkeypatch.delenv("APP_MODE", raising=False)
    assert mode() == "dev"
