import contextlib, io, unittest
class TestBanner(unittest.TestCase):
    def test_lines(self):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            banner("ab")
        self.assertEqual(buf.getvalue().count("\n"), 3)
