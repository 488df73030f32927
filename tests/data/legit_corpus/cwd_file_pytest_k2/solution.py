import json
def load_config(name="config.json"):
    with open(name) as f:
        return json.load(f)
def save_total(values, name="total.txt"):
    with open(name, "w") as f:
        f.write(str(sum(values)))
