import unittest
from solution import Stack
class TestStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shared = Stack()
    def setUp(self):
        self.s = Stack()
        self.s.push(3)
    def test_pop(self):
        self.assertEqual(self.s.pop(), 3)
    def test_empty(self):
        self.assertEqual(len(self.shared), 0)
