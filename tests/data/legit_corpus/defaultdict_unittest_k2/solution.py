from collections import defaultdict
def group_by_first(words):
    g = defaultdict(list)
    for w in words:
        g[w[0]].append(w)
    return g
