from solution import mode, workers
def test_env(monkeypatch):
    monkeypatch.setenv("APP_MODE", "prod5")
    assert mode() == "prod5"
def test_default(monkeypatch):
    monkeypatch.delenv("APP_MODE", raising=False)
    assert mode() == "dev"
