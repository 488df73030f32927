import csv
def count_lines(path):
    with open(path) as f:
        return sum(1 for _ in f)
def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)
