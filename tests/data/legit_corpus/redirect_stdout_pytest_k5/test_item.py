import contextlib, io
from solution import banner
def test_banner():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        banner("x" * 5)
    assert buf.getvalue().splitlines() == ["=" * 5, "x" * 5, "=" * 5]
