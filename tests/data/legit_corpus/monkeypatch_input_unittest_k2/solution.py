def ask_sum():
    a = int(input("a? "))
    b = int(input("b? "))
    return a + b
