from solution import last_seen, window
def test_order():
    assert list(last_seen(["a", "b", "a", "c2"])) == ["b", "a", "c2"]
def test_window():
    w = window(range(10), 2)
    assert list(w) == [8, 9] and w.maxlen == 2
