def greet(name, times=1):
    for _ in range(times):
        print(f"Hello, {name}!")
