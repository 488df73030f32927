import json, os
from solution import load_config, save_total
def test_load():
    with open("config.json", "w") as f:
        json.dump({"k": 5}, f)
    try:
        assert load_config() == {"k": 5}
    finally:
        os.remove("config.json")
def test_save():
    save_total([1, 5])
    with open("total.txt") as f:
        assert f.read() == "6"
    os.remove("total.txt")
