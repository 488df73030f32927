import pytest
from solution import Stack
@pytest.fixture
def stack():
    s = Stack()
    for i in range(5):
        s.push(i)
    yield s
@pytest.fixture(scope="module")
def empty():
    return Stack()
def test_len(stack):
    assert len(stack) == 5
def test_pop(stack):
    assert stack.pop() == 4
    assert len(stack) == 4
def test_empty(empty):
    with pytest.raises(IndexError):
        empty.pop()
