from solution import chunks, running_max
def test_chunks():
    assert list(chunks(list(range(11)), 2))[-1] == [10]
    assert len(list(chunks("abcdef", 5))) == 2
def test_running_max():
    g = running_max([1, 5, 0, 6])
    assert next(g) == 1
    assert list(g) == [5, 5, 6]
