import pytest
from solution import Account, InsufficientFunds
def test_value_error():
    with pytest.raises(ValueError, match="negative"):
        Account(-3)
def test_custom():
    with pytest.raises(InsufficientFunds):
        Account(3).withdraw(4)
def test_ok():
    assert Account(6).withdraw(3) == 3
