import unittest
class TestAlgo(unittest.TestCase):
    def test_two_sum(self):
        self.assertEqual(two_sum([5, 1], 6), [0, 1])
    def test_palindrome(self):
        self.assertTrue(is_palindrome("x" * 5))
    def test_merge(self):
        self.assertListEqual(merge_intervals([[0, 5]]), [[0, 5]])
