def total(d, keys):
    return sum(d.get(k, 0) for k in keys)
