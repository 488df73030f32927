from solution import Point, make
def test_repr():
    assert repr(Point(5, 2)) == "Point(5, 2)"
def test_str():
    assert str(make(5)) == "(5, 6)"
def test_format():
    assert f"p={make(5)}" == "p=(5, 6)"
