from solution import Vec
def test_add():
    v = Vec(1, 2) + Vec(2, 1)
    assert (v.x, v.y) == (3, 3)
def test_scale_both_sides():
    assert tuple(Vec(1, 2) * 2) == (2, 4)
    assert tuple(2 * Vec(1, 2)) == (2, 4)
def test_neg_abs():
    assert abs(Vec(6, 8)) == 10
    assert (-Vec(2, 0)).x == -2
def test_sorted_by_norm():
    vs = sorted([Vec(4, 0), Vec(1, 0), Vec(0, 2)])
    assert [abs(v) for v in vs] == [1, 2, 4]
    assert len(vs[0]) == 2
