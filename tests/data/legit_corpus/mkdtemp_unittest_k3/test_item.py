import os, shutil, tempfile, unittest
class TestFiles(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp()
    def tearDown(self):
        shutil.rmtree(self.d)
    def test_make_and_list(self):
        make_files(self.d, 3)
        self.assertEqual(list_files(self.d, ".log"), [f"f{i}.log" for i in range(3)])
