from solution import last_seen, window
def test_order():
    assert list(last_seen(["a", "b", "a", "c3"])) == ["b", "a", "c3"]
def test_window():
    w = window(range(10), 3)
    assert list(w) == [7, 8, 9] and w.maxlen == 3
