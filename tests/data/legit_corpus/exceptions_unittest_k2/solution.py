class InsufficientFunds(Exception):
    pass
class Account:
    def __init__(self, balance=0):
        if balance < 0:
            raise ValueError("negative balance")
        self.balance = balance
    def withdraw(self, amount):
        if amount > self.balance:
            raise InsufficientFunds(f"need {amount - self.balance} more")
        self.balance -= amount
        return self.balance
