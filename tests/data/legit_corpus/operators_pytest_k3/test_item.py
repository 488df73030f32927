from solution import Vec
def test_add():
    v = Vec(1, 2) + Vec(3, 1)
    assert (v.x, v.y) == (4, 3)
def test_scale_both_sides():
    assert tuple(Vec(1, 2) * 3) == (3, 6)
    assert tuple(3 * Vec(1, 2)) == (3, 6)
def test_neg_abs():
    assert abs(Vec(9, 12)) == 15
    assert (-Vec(3, 0)).x == -3
def test_sorted_by_norm():
    vs = sorted([Vec(5, 0), Vec(1, 0), Vec(0, 3)])
    assert [abs(v) for v in vs] == [1, 3, 5]
    assert len(vs[0]) == 2
