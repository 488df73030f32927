from solution import Shape, Square, build
def test_instances():
    shapes = build(5)
    assert len(shapes) == 5
    assert all(isinstance(s, Shape) for s in shapes)
    assert isinstance(shapes[0], Square)
def test_subclass():
    assert issubclass(Square, Shape)
def test_area():
    assert [s.area() for s in build(5)] == [1, 4, 9, 16, 25]
