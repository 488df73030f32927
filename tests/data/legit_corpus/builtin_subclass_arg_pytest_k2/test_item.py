from solution import total
class Defaulting(dict):
    def __missing__(self, key):
        return 0
def test_dict_subclass():
    d = Defaulting(a=2, b=2)
    assert total(d, ["a", "b", "zz"]) == 4
