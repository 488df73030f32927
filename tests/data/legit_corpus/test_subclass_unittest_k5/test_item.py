import unittest
from solution import Counter
class Triple(Counter):
    def step(self):
        return 3
class TestSub(unittest.TestCase):
    def test_tick(self):
        self.assertEqual(Triple().tick(5), 15)
