import unittest
class TestGen(unittest.TestCase):
    def test_chunks(self):
        self.assertEqual(sum(1 for _ in chunks([0] * 3, 1)), 3)
