import io
from unittest import mock
from solution import report
def test_report():
    with mock.patch("sys.stdout", new_callable=io.StringIO) as out:
        report([1, 2])
    assert out.getvalue() == "total: 3\nmax: 2\n"
