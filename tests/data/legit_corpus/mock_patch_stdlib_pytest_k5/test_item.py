from unittest import mock
from solution import roll, stamp
def test_roll():
    with mock.patch("random.randint", return_value=5) as m:
        assert roll(3) == [5] * 3
    assert m.call_count == 3
@mock.patch("time.time", return_value=305)
def test_stamp(m):
    assert stamp() == 5
