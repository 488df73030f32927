import unittest
from solution import Point, make
class TestPoint(unittest.TestCase):
    def test_repr(self):
        self.assertEqual(repr(make(5)), "Point(5, 6)")
    def test_str(self):
        self.assertEqual(str(Point(0, 5)), "(0, 5)")
