from solution import rotate, bump
def test_rotate_in_place():
    a = [1, 2, 3, 4, 5, 6]
    rotate(a, 2)
    assert a == [5, 6, 1, 2, 3, 4]
def test_bump():
    d = {}
    for _ in range(2):
        bump(d, "x")
    assert d == {"x": 2}
