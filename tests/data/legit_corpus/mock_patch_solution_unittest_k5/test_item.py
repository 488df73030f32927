import unittest
from unittest.mock import patch
import solution
class TestWC(unittest.TestCase):
    def test_wc(self):
        with patch.object(solution, "fetch", return_value="w " * 5):
            self.assertEqual(solution.word_count("u"), 5)
