import unittest
from solution import total
class Tracked(dict):
    pass
class TestTotal(unittest.TestCase):
    def test_subclass_of_dict(self):
        self.assertEqual(total(Tracked(x=5), ["x", "y"]), 5)
