import unittest
from unittest.mock import patch
class TestAsk(unittest.TestCase):
    @patch("builtins.input", side_effect=["3", "1"])
    def test_sum(self, m):
        self.assertEqual(ask_sum(), 4)
        self.assertEqual(m.call_count, 2)
