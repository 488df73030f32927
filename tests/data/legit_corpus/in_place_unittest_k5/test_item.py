import unittest
class TestRotate(unittest.TestCase):
    def test_rotate(self):
        a = list(range(7))
        rotate(a, 1)
        self.assertEqual(a[0], 6)
