import pytest
from solution import Account, InsufficientFunds
def test_value_error():
    with pytest.raises(ValueError, match="negative"):
        Account(-5)
def test_custom():
    with pytest.raises(InsufficientFunds):
        Account(5).withdraw(6)
def test_ok():
    assert Account(8).withdraw(3) == 5
