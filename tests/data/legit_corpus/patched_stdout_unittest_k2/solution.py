def report(values):
    print("total:", sum(values))
    print("max:", max(values))
