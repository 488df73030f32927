from solution import minmax
def test_fields():
    r = minmax([2, 1, 6])
    assert r.lo == 1 and r.hi == 6
def test_tuple():
    assert minmax([2]) == (2, 2)
    lo, hi = minmax([2, 7])
    assert (lo, hi) == (2, 7)
