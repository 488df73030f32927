import unittest
from unittest.mock import patch
class TestAsk(unittest.TestCase):
    @patch("builtins.input", side_effect=["5", "1"])
    def test_sum(self, m):
        self.assertEqual(ask_sum(), 6)
        self.assertEqual(m.call_count, 2)
