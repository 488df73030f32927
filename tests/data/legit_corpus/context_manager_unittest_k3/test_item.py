import unittest
from solution import Resource
class TestResource(unittest.TestCase):
    def test_closes(self):
        res = Resource("r3")
        with res as r:
            self.assertFalse(r.closed)
        self.assertTrue(res.closed)
