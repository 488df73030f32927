from solution import Point, make
def test_repr():
    assert repr(Point(3, 2)) == "Point(3, 2)"
def test_str():
    assert str(make(3)) == "(3, 4)"
def test_format():
    assert f"p={make(3)}" == "p=(3, 4)"
