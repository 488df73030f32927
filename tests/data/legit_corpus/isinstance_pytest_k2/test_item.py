from solution import Shape, Square, build
def test_instances():
    shapes = build(2)
    assert len(shapes) == 2
    assert all(isinstance(s, Shape) for s in shapes)
    assert isinstance(shapes[0], Square)
def test_subclass():
    assert issubclass(Square, Shape)
def test_area():
    assert [s.area() for s in build(2)] == [1, 4]
