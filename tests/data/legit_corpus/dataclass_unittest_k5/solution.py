from dataclasses import dataclass, field
@dataclass
class Item:
    name: str
    price: int
    tags: list = field(default_factory=list)
def make_item(k):
    return Item(f"item{k}", k * 10)
def cheapest(items):
    return min(items, key=lambda i: i.price)
