from solution import Point, make
def test_repr():
    assert repr(Point(2, 2)) == "Point(2, 2)"
def test_str():
    assert str(make(2)) == "(2, 3)"
def test_format():
    assert f"p={make(2)}" == "p=(2, 3)"
