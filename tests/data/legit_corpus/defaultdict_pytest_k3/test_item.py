from solution import group_by_first
def test_groups():
    g = group_by_first(["ab", "ac", "b3"])
    assert g["a"] == ["ab", "ac"] and g["b"] == ["b3"]
def test_missing_key_is_empty_list():
    assert group_by_first(["x"])["q"] == []
