import contextlib, io
from solution import banner
def test_banner():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        banner("x" * 3)
    assert buf.getvalue().splitlines() == ["=" * 3, "x" * 3, "=" * 3]
