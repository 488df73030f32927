import unittest
from solution import Point, make
class TestPoint(unittest.TestCase):
    def test_repr(self):
        self.assertEqual(repr(make(3)), "Point(3, 4)")
    def test_str(self):
        self.assertEqual(str(Point(0, 3)), "(0, 3)")
