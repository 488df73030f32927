from solution import Money
def test_sum_equals():
    assert Money(2) + Money(1) == Money(3)
def test_not_equal():
    assert Money(2) != Money(0)
