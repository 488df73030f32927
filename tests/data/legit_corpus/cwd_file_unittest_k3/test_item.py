import json, os, unittest
class TestConfig(unittest.TestCase):
    def setUp(self):
        with open("config.json", "w") as f:
            json.dump({"n": 3}, f)
    def tearDown(self):
        os.remove("config.json")
    def test_load(self):
        self.assertEqual(load_config()["n"], 3)
