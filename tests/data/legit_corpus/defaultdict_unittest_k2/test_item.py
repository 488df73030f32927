import unittest
class TestGroup(unittest.TestCase):
    def test_dict(self):
        self.assertEqual(dict(group_by_first(["z2"])), {"z": ["z2"]})
