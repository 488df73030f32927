class Resource:
    opened = 0
    def __init__(self, name):
        self.name = name
        self.closed = False
    def __enter__(self):
        Resource.opened += 1
        return self
    def __exit__(self, *exc):
        self.closed = True
        return False
