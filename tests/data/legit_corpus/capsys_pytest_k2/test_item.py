from solution import greet
def test_greet(capsys):
    greet("ann", 2)
    assert capsys.readouterr().out == "Hello, ann!\n" * 2
def test_nothing(capsys):
    greet("bob", 0)
    assert capsys.readouterr().out == ""
