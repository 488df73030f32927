import pytest
from solution import is_prime, fib
@pytest.mark.parametrize("n, expected", [(5, True), (1, False), (25, False), (97, True)])
def test_prime(n, expected):
    assert is_prime(n) == expected
@pytest.mark.parametrize("n", range(5))
def test_fib_recurrence(n):
    assert fib(n + 2) == fib(n + 1) + fib(n)
