import unittest
class TestMinMax(unittest.TestCase):
    def test_hi(self):
        self.assertEqual(minmax(range(5)).hi, 4)
    def test_tuple(self):
        self.assertEqual(tuple(minmax([5, 0])), (0, 5))
