from dataclasses import asdict
from solution import Item, make_item, cheapest
def test_fields():
    it = make_item(5)
    assert it.name == "item5" and it.price == 50 and it.tags == []
def test_equality():
    assert make_item(5) == Item("item5", 50)
def test_asdict():
    assert asdict(make_item(5)) == {"name": "item5", "price": 50, "tags": []}
def test_cheapest():
    assert cheapest([make_item(6), make_item(5)]).price == 50
