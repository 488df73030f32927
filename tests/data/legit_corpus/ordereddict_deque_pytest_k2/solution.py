from collections import OrderedDict, deque
def last_seen(events):
    d = OrderedDict()
    for e in events:
        d.pop(e, None)
        d[e] = True
    return d
def window(xs, n):
    return deque(xs, maxlen=n)
