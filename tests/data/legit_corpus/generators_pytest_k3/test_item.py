from solution import chunks, running_max
def test_chunks():
    assert list(chunks(list(range(7)), 2))[-1] == [6]
    assert len(list(chunks("abcdef", 3))) == 2
def test_running_max():
    g = running_max([1, 3, 0, 4])
    assert next(g) == 1
    assert list(g) == [3, 3, 4]
