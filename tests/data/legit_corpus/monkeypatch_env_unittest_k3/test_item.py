import os, unittest
from unittest.mock import patch
class TestEnv(unittest.TestCase):
    def test_workers(self):
        with patch.dict(os.environ, {"APP_WORKERS": "3"}):
            self.assertEqual(workers(), 3)
