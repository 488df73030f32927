import csv
from solution import count_lines, write_rows
def test_count(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("x\n" * 2)
    assert count_lines(p) == 2
def test_write(tmp_path):
    out = tmp_path / "out.csv"
    write_rows(out, [[i, i * 2] for i in range(3)])
    assert list(csv.reader(out.open())) == [[str(i), str(i * 2)] for i in range(3)]
