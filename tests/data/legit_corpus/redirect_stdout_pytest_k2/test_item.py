import contextlib, io
from solution import banner
def test_banner():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        banner("x" * 2)
    assert buf.getvalue().splitlines() == ["=" * 2, "x" * 2, "=" * 2]
