import pytest
from solution import Resource
def test_closes():
    with Resource("r5") as r:
        assert r.name == "r5"
        assert not r.closed
    assert r.closed
def test_exception_propagates():
    with pytest.raises(ValueError):
        with Resource("x") as r:
            raise ValueError("boom")
    assert r.closed
