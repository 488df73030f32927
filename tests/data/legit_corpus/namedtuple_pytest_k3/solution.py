from collections import namedtuple
Pair = namedtuple("Pair", "lo hi")
def minmax(xs):
    return Pair(min(xs), max(xs))
