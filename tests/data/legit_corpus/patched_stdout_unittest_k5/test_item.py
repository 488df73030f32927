import io, unittest
from unittest.mock import patch
class TestReport(unittest.TestCase):
    @patch("sys.stdout", new_callable=io.StringIO)
    def test_report(self, out):
        report([5, 2])
        self.assertIn("total: 7", out.getvalue())
