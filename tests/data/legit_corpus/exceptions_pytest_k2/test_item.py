import pytest
from solution import Account, InsufficientFunds
def test_value_error():
    with pytest.raises(ValueError, match="negative"):
        Account(-2)
def test_custom():
    with pytest.raises(InsufficientFunds):
        Account(2).withdraw(3)
def test_ok():
    assert Account(5).withdraw(3) == 2
