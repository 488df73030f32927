class Counter:
    def __init__(self):
        self.n = 0
    def step(self):
        return 1
    def tick(self, times):
        for _ in range(times):
            self.n += self.step()
        return self.n
