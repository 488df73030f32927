class Animal:
    def __init__(self, name):
        self.name = name
    def sound(self):
        return "..."
    def speak(self):
        return f"{self.name} says {self.sound()}"
class Dog(Animal):
    def sound(self):
        return "woof"
class Puppy(Dog):
    def speak(self):
        return super().speak() + "!" * 5
