import unittest
class TestAccount(unittest.TestCase):
    def test_value_error(self):
        with self.assertRaises(ValueError):
            Account(-1)
    def test_custom(self):
        with self.assertRaises(InsufficientFunds) as cm:
            Account(0).withdraw(2)
        self.assertIn("2", str(cm.exception))
    def test_builtin_raise(self):
        self.assertRaises(TypeError, Account(1).withdraw, "x")
