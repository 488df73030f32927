from solution import greet
def test_greet(capsys):
    greet("ann", 3)
    assert capsys.readouterr().out == "Hello, ann!\n" * 3
def test_nothing(capsys):
    greet("bob", 0)
    assert capsys.readouterr().out == ""
