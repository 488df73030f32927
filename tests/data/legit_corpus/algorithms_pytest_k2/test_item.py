from solution import two_sum, merge_intervals, is_palindrome
def test_two_sum():
    assert two_sum([1, 2, 7], 9) == [1, 2]
    assert two_sum([1], 5) == []
def test_merge():
    assert merge_intervals([[1, 3], [2, 5], [12, 13]]) == [[1, 5], [12, 13]]
def test_palindrome():
    assert is_palindrome("A man, a plan" + "" * 2 + ", a canal: Panama")
    assert not is_palindrome("ab" * 2)
