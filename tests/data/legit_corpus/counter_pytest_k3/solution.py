from collections import Counter
def letter_counts(s):
    return Counter(c for c in s if c.isalpha())
