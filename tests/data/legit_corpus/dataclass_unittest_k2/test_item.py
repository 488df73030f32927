import unittest
class TestItem(unittest.TestCase):
    def test_price(self):
        self.assertEqual(make_item(2).price, 20)
    def test_eq(self):
        self.assertEqual(make_item(1), Item("item1", 10))
