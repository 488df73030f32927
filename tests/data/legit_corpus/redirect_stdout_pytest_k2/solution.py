def banner(text):
    line = "=" * len(text)
    print(line)
    print(text)
    print(line)
