from solution import Money
def test_sum_equals():
    assert Money(5) + Money(1) == Money(6)
def test_not_equal():
    assert Money(5) != Money(0)
