from solution import Animal, Dog, Puppy
def test_override():
    assert Dog("rex").speak() == "rex says woof"
def test_super_chain():
    assert Puppy("bit").speak() == "bit says woof" + "!" * 5
    assert isinstance(Puppy("a"), Animal)
