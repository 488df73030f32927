def chunks(xs, n):
    for i in range(0, len(xs), n):
        yield xs[i:i + n]
def running_max(xs):
    best = None
    for x in xs:
        best = x if best is None else max(best, x)
        yield best
