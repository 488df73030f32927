from solution import two_sum, merge_intervals, is_palindrome
def test_two_sum():
    assert two_sum([1, 3, 7], 10) == [1, 2]
    assert two_sum([1], 5) == []
def test_merge():
    assert merge_intervals([[1, 3], [2, 6], [13, 14]]) == [[1, 6], [13, 14]]
def test_palindrome():
    assert is_palindrome("A man, a plan" + "" * 3 + ", a canal: Panama")
    assert not is_palindrome("ab" * 3)
