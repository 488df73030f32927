from solution import minmax
def test_fields():
    r = minmax([5, 1, 15])
    assert r.lo == 1 and r.hi == 15
def test_tuple():
    assert minmax([5]) == (5, 5)
    lo, hi = minmax([2, 10])
    assert (lo, hi) == (2, 10)
