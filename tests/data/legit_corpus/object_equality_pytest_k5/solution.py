class Money:
    def __init__(self, cents):
        self.cents = cents
    def __add__(self, o):
        return Money(self.cents + o.cents)
    def __eq__(self, o):
        return isinstance(o, Money) and o.cents == self.cents
    def __hash__(self):
        return hash(self.cents)
