import unittest
class TestAlgo(unittest.TestCase):
    def test_two_sum(self):
        self.assertEqual(two_sum([3, 1], 4), [0, 1])
    def test_palindrome(self):
        self.assertTrue(is_palindrome("x" * 3))
    def test_merge(self):
        self.assertListEqual(merge_intervals([[0, 3]]), [[0, 3]])
