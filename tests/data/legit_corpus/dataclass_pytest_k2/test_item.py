from dataclasses import asdict
from solution import Item, make_item, cheapest
def test_fields():
    it = make_item(2)
    assert it.name == "item2" and it.price == 20 and it.tags == []
def test_equality():
    assert make_item(2) == Item("item2", 20)
def test_asdict():
    assert asdict(make_item(2)) == {"name": "item2", "price": 20, "tags": []}
def test_cheapest():
    assert cheapest([make_item(3), make_item(2)]).price == 20
