import unittest
class TestAnimals(unittest.TestCase):
    def test_base(self):
        self.assertEqual(Animal("cat").speak(), "cat says ...")
    def test_puppy(self):
        self.assertTrue(Puppy("p").speak().endswith("!" * 3))
