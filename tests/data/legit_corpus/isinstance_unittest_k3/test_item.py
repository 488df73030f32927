import unittest
class TestShapes(unittest.TestCase):
    def test_instances(self):
        shapes = build(3)
        for s in shapes:
            self.assertIsInstance(s, Shape)
    def test_area(self):
        self.assertEqual(build(3)[-1].area(), 9)
