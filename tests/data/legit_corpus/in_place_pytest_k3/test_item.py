from solution import rotate, bump
def test_rotate_in_place():
    a = [1, 2, 3, 4, 5, 6]
    rotate(a, 3)
    assert a == [4, 5, 6, 1, 2, 3]
def test_bump():
    d = {}
    for _ in range(3):
        bump(d, "x")
    assert d == {"x": 3}
