from collections import Counter
from solution import letter_counts
def test_counts():
    c = letter_counts("a" * 3 + "bb!")
    assert c["a"] == 3 and c["b"] == 2 and c["z"] == 0
def test_most_common():
    assert letter_counts("x" * 5 + "yy").most_common(1) == [("x", 5)]
def test_is_counter():
    assert isinstance(letter_counts("ab"), Counter)
