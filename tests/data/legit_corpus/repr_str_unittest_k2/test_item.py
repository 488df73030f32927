import unittest
from solution import Point, make
class TestPoint(unittest.TestCase):
    def test_repr(self):
        self.assertEqual(repr(make(2)), "Point(2, 3)")
    def test_str(self):
        self.assertEqual(str(Point(0, 2)), "(0, 2)")
