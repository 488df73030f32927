import unittest
class TestOrder(unittest.TestCase):
    def test_keys(self):
        self.assertEqual(list(last_seen("abca")), ["b", "c", "a"])
    def test_window(self):
        self.assertEqual(len(window([1] * 20, 3)), 3)
