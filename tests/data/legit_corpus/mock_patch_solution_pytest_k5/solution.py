def fetch(url):
    raise RuntimeError("no network in tests")
def word_count(url):
    return len(fetch(url).split())
