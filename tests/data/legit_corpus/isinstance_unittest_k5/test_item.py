import unittest
class TestShapes(unittest.TestCase):
    def test_instances(self):
        shapes = build(5)
        for s in shapes:
            self.assertIsInstance(s, Shape)
    def test_area(self):
        self.assertEqual(build(5)[-1].area(), 25)
