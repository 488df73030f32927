import json, os
from solution import load_config, save_total
def test_load():
    with open("config.json", "w") as f:
        json.dump({"k": 2}, f)
    try:
        assert load_config() == {"k": 2}
    finally:
        os.remove("config.json")
def test_save():
    save_total([1, 2])
    with open("total.txt") as f:
        assert f.read() == "3"
    os.remove("total.txt")
