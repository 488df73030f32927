import unittest
class TestCounts(unittest.TestCase):
    def test_equal(self):
        self.assertEqual(letter_counts("q" * 5), {"q": 5})
