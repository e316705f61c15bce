"""Synthetic source code: small Java-like functions in families of near-clones.

Deterministic (seeded), so fixtures and datasets are the same on every machine. Functions of one
family differ only in names and constants, which makes them clones of each other; different
families compute different things.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_FAMILIES = (
    "int {f}(int[] {a}) {{ int {s} = 0; for (int {i} = 0; {i} < {a}.length; {i}++) {{ {s} += {a}[{i}]; }} return {s}; }}",
    "int {f}(int[] {a}) {{ int {m} = {a}[0]; for (int {i} = 1; {i} < {a}.length; {i}++) {{ if ({a}[{i}] > {m}) {{ {m} = {a}[{i}]; }} }} return {m}; }}",
    "boolean {f}(String {a}) {{ int {i} = 0; int {j} = {a}.length() - 1; while ({i} < {j}) {{ if ({a}.charAt({i}) != {a}.charAt({j})) return false; {i}++; {j}--; }} return true; }}",
    "String {f}(String {a}) {{ StringBuilder {s} = new StringBuilder(); for (int {i} = {a}.length() - 1; {i} >= 0; {i}--) {{ {s}.append({a}.charAt({i})); }} return {s}.toString(); }}",
    "long {f}(int {a}) {{ long {s} = 1; for (int {i} = 2; {i} <= {a}; {i}++) {{ {s} *= {i}; }} return {s}; }}",
    "int {f}(int {a}, int {m}) {{ while ({m} != 0) {{ int {i} = {m}; {m} = {a} % {m}; {a} = {i}; }} return {a}; }}",
    "void {f}(int[] {a}) {{ for (int {i} = 0; {i} < {a}.length; {i}++) {{ for (int {j} = 0; {j} + 1 < {a}.length - {i}; {j}++) {{ if ({a}[{j}] > {a}[{j} + 1]) {{ int {s} = {a}[{j}]; {a}[{j}] = {a}[{j} + 1]; {a}[{j} + 1] = {s}; }} }} }} }}",
    "int {f}(String {a}, char {m}) {{ int {s} = 0; for (char {i} : {a}.toCharArray()) {{ if ({i} == {m}) {s}++; }} return {s}; }}",
)
_NAMES = (
    "total",
    "acc",
    "value",
    "result",
    "count",
    "tmp",
    "left",
    "right",
    "buf",
    "item",
    "index",
    "cursor",
    "best",
    "data",
    "arr",
    "text",
    "num",
    "limit",
    "pos",
    "key",
)
_VERBS = ("compute", "find", "check", "build", "get", "calc", "make", "scan", "eval", "run")
_NOUNS = ("Sum", "Max", "Palindrome", "Reverse", "Factorial", "Gcd", "Sort", "Count")


@dataclass(frozen=True)
class Function:
    family: int
    code: str
    name: str


def functions(count: int, families: int = len(_FAMILIES), seed: int = 13) -> list[Function]:
    """``count`` functions spread over ``families`` families, round-robin."""
    rng = random.Random(seed)
    out = []
    for index in range(count):
        family = index % families
        names = rng.sample(_NAMES, 5)
        name = f"{rng.choice(_VERBS)}{_NOUNS[family % len(_NOUNS)]}{index}"
        code = _FAMILIES[family].format(
            f=name, a=names[0], s=names[1], i=names[2], j=names[3], m=names[4]
        )
        out.append(Function(family, code, name))
    return out


def docstring(function: Function) -> str:
    """A short natural-language description of what a function of this family does."""
    return (
        "sum of the array",
        "largest element of the array",
        "whether the string is a palindrome",
        "the string reversed",
        "factorial of n",
        "greatest common divisor",
        "sort the array in place",
        "count occurrences of a character",
    )[function.family % 8]
