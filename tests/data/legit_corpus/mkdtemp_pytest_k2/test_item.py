import os, shutil, tempfile
from solution import list_files, make_files
def test_list():
    d = tempfile.mkdtemp()
    try:
        for name in ["a.txt", "b.txt", "c.md"]:
            open(os.path.join(d, name), "w").close()
        assert list_files(d, ".txt") == ["a.txt", "b.txt"]
    finally:
        shutil.rmtree(d)
def test_make():
    d = tempfile.mkdtemp()
    make_files(d, 2)
    assert len(os.listdir(d)) == 2
    shutil.rmtree(d)
