import unittest
class TestAlgo(unittest.TestCase):
    def test_two_sum(self):
        self.assertEqual(two_sum([2, 1], 3), [0, 1])
    def test_palindrome(self):
        self.assertTrue(is_palindrome("x" * 2))
    def test_merge(self):
        self.assertListEqual(merge_intervals([[0, 2]]), [[0, 2]])
