from unittest import mock
from solution import roll, stamp
def test_roll():
    with mock.patch("random.randint", return_value=3) as m:
        assert roll(3) == [3] * 3
    assert m.call_count == 3
@mock.patch("time.time", return_value=185)
def test_stamp(m):
    assert stamp() == 3
