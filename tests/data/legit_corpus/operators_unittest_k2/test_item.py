import unittest
from solution import Vec
class TestVec(unittest.TestCase):
    def test_add(self):
        self.assertEqual(list(Vec(2, 1) + Vec(1, 1)), [3, 2])
    def test_lt(self):
        self.assertTrue(Vec(1, 1) < Vec(2, 2))
        self.assertLess(abs(Vec(0, 1)), abs(Vec(0, 2)))
