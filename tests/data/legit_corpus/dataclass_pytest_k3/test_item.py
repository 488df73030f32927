from dataclasses import asdict
from solution import Item, make_item, cheapest
def test_fields():
    it = make_item(3)
    assert it.name == "item3" and it.price == 30 and it.tags == []
def test_equality():
    assert make_item(3) == Item("item3", 30)
def test_asdict():
    assert asdict(make_item(3)) == {"name": "item3", "price": 30, "tags": []}
def test_cheapest():
    assert cheapest([make_item(4), make_item(3)]).price == 30
