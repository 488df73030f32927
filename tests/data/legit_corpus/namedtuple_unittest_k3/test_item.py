import unittest
class TestMinMax(unittest.TestCase):
    def test_hi(self):
        self.assertEqual(minmax(range(3)).hi, 2)
    def test_tuple(self):
        self.assertEqual(tuple(minmax([3, 0])), (0, 3))
