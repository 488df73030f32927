from solution import minmax
def test_fields():
    r = minmax([3, 1, 9])
    assert r.lo == 1 and r.hi == 9
def test_tuple():
    assert minmax([3]) == (3, 3)
    lo, hi = minmax([2, 8])
    assert (lo, hi) == (2, 8)
