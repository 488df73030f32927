import unittest
class TestCounts(unittest.TestCase):
    def test_equal(self):
        self.assertEqual(letter_counts("q" * 2), {"q": 2})
