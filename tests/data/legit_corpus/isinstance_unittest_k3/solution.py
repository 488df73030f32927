class Shape:
    def area(self):
        raise NotImplementedError
class Square(Shape):
    def __init__(self, side):
        self.side = side
    def area(self):
        return self.side * self.side
def build(n):
    return [Square(i + 1) for i in range(n)]
