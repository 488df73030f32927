import unittest
class TestMinMax(unittest.TestCase):
    def test_hi(self):
        self.assertEqual(minmax(range(2)).hi, 1)
    def test_tuple(self):
        self.assertEqual(tuple(minmax([2, 0])), (0, 2))
