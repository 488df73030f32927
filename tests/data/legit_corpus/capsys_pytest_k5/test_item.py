from solution import greet
def test_greet(capsys):
    greet("ann", 5)
    assert capsys.readouterr().out == "Hello, ann!\n" * 5
def test_nothing(capsys):
    greet("bob", 0)
    assert capsys.readouterr().out == ""
