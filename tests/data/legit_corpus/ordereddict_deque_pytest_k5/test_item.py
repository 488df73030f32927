from solution import last_seen, window
def test_order():
    assert list(last_seen(["a", "b", "a", "c5"])) == ["b", "a", "c5"]
def test_window():
    w = window(range(10), 5)
    assert list(w) == [5, 6, 7, 8, 9] and w.maxlen == 5
