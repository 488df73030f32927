from solution import Vec
def test_add():
    v = Vec(1, 2) + Vec(5, 1)
    assert (v.x, v.y) == (6, 3)
def test_scale_both_sides():
    assert tuple(Vec(1, 2) * 5) == (5, 10)
    assert tuple(5 * Vec(1, 2)) == (5, 10)
def test_neg_abs():
    assert abs(Vec(15, 20)) == 25
    assert (-Vec(5, 0)).x == -5
def test_sorted_by_norm():
    vs = sorted([Vec(7, 0), Vec(1, 0), Vec(0, 5)])
    assert [abs(v) for v in vs] == [1, 5, 7]
    assert len(vs[0]) == 2
