import unittest
class TestFib(unittest.TestCase):
    def test_values(self):
        for n, want in [(0, 0), (1, 1), (7, 13)]:
            with self.subTest(n=n):
                self.assertEqual(fib(n), want)
