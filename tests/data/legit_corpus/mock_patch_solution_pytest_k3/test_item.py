from unittest import mock
from solution import word_count
def test_word_count():
    with mock.patch("solution.fetch", return_value="a b " * 3) as m:
        assert word_count("http://x") == 6
    m.assert_called_once_with("http://x")
