from solution import Money
def test_sum_equals():
    assert Money(3) + Money(1) == Money(4)
def test_not_equal():
    assert Money(3) != Money(0)
