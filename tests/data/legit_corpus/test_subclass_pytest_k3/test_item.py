from solution import Counter
class Double(Counter):
    def step(self):
        return 2
def test_inherited_tick_uses_override():
    assert Double().tick(3) == 6
def test_base():
    assert Counter().tick(3) == 3
