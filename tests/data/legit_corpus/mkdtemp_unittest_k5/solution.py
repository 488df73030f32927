import os
def list_files(d, ext):
    return sorted(f for f in os.listdir(d) if f.endswith(ext))
def make_files(d, n):
    for i in range(n):
        with open(os.path.join(d, f"f{i}.log"), "w") as fh:
            fh.write(str(i))
