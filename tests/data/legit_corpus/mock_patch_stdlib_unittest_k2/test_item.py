import unittest
from unittest.mock import patch
class TestRoll(unittest.TestCase):
    @patch("random.randint")
    def test_roll(self, m):
        m.return_value = 2
        self.assertEqual(sum(roll(2)), 4)
        m.assert_called_with(1, 6)
