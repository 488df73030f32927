from solution import chunks, running_max
def test_chunks():
    assert list(chunks(list(range(5)), 2))[-1] == [4]
    assert len(list(chunks("abcdef", 2))) == 3
def test_running_max():
    g = running_max([1, 2, 0, 3])
    assert next(g) == 1
    assert list(g) == [2, 2, 3]
