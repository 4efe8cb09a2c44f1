"""An allocation-heavy Python program, the named program `python3` of `python -m bench programs`.

Run as `python3 -S allocheavy.py ROUNDS` (no site: nothing but this file is imported).  Each round builds and drops
what a Python program allocates all day: a dict of 20 000 string keys to small lists and tuples, strings made by
formatting, joining and slicing, a list of small class instances linked to each other, a set, and sorted copies.
A quarter of the rounds keep their dict alive for the next eight rounds, so the heap holds long-lived data among
the short-lived churn, and its size goes up and down.  ROUNDS 0 runs nothing: the interpreter's own start-up, the
baseline.  Deterministic when PYTHONHASHSEED is fixed (the catalog sets 0): set and dict orders do not vary.
"""

import sys


class Node:
    __slots__ = ("key", "text", "next")

    def __init__(self, key, text, next_node):
        self.key = key
        self.text = text
        self.next = next_node


def one_round(number):
    table = {f"key-{index}-{number}": [index, str(index) * (index % 7 + 1), (index, number)] for index in range(20000)}
    words = sorted(table, key=lambda key: (len(key), key))
    joined = "|".join(words[:2000])
    head = None
    for index in range(6000):
        head = Node(index, joined[index % 97: index % 97 + 40 + index % 50], head if index % 3 else None)
    seen = {text for text in (node.text for node in _walk(head))}
    pieces = [word.upper().replace("KEY", "k") for word in words[::5]]
    return table, len(seen) + len(pieces)


def _walk(node):
    while node is not None:
        yield node
        node = node.next


def main(rounds):
    kept = []
    total = 0
    for number in range(rounds):
        table, count = one_round(number)
        total += count
        kept.append(table if number % 4 == 0 else None)
        if len(kept) > 8:
            kept.pop(0)
    return total


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
