"""Run names: adjective-animal-N, as old dstack made them (e.g. grumpy-zebra-1), or one the user
picks with `dstack run --name` (as dstack 0.10 added), checked by ``check_run_name``."""

from __future__ import annotations

import random
import re

from dstack_prefect.errors import DstackError

ADJECTIVES = [
    "able",
    "agile",
    "amber",
    "ancient",
    "angry",
    "bold",
    "brave",
    "breezy",
    "bright",
    "brisk",
    "calm",
    "candid",
    "cheerful",
    "clever",
    "cosmic",
    "crimson",
    "curious",
    "daring",
    "dazzling",
    "eager",
    "early",
    "earnest",
    "fancy",
    "fearless",
    "fierce",
    "fluffy",
    "fond",
    "fresh",
    "friendly",
    "funny",
    "gentle",
    "giant",
    "glad",
    "golden",
    "graceful",
    "grumpy",
    "happy",
    "hardy",
    "hasty",
    "honest",
    "humble",
    "icy",
    "jolly",
    "keen",
    "kind",
    "lazy",
    "lively",
    "lucky",
    "mellow",
    "merry",
    "mighty",
    "misty",
    "modest",
    "nifty",
    "noble",
    "odd",
    "patient",
    "perky",
    "plucky",
    "polite",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "rare",
    "rosy",
    "rusty",
    "shiny",
    "shy",
    "silent",
    "silly",
    "sleepy",
    "slick",
    "smart",
    "snappy",
    "snowy",
    "sober",
    "speedy",
    "spicy",
    "steady",
    "stormy",
    "sturdy",
    "sunny",
    "swift",
    "tender",
    "tidy",
    "tiny",
    "tough",
    "upbeat",
    "vivid",
    "warm",
    "wild",
    "wise",
    "witty",
    "young",
    "zany",
    "zesty",
]
ANIMALS = [
    "albatross",
    "alpaca",
    "ant",
    "badger",
    "bat",
    "bear",
    "beaver",
    "bee",
    "bison",
    "boar",
    "buffalo",
    "camel",
    "cat",
    "cheetah",
    "chicken",
    "cobra",
    "cod",
    "cougar",
    "cow",
    "coyote",
    "crab",
    "crane",
    "crow",
    "deer",
    "dingo",
    "dog",
    "dolphin",
    "donkey",
    "dove",
    "duck",
    "eagle",
    "eel",
    "elephant",
    "elk",
    "emu",
    "falcon",
    "ferret",
    "finch",
    "fish",
    "fox",
    "frog",
    "gazelle",
    "gecko",
    "goat",
    "goose",
    "gopher",
    "gorilla",
    "hamster",
    "hare",
    "hawk",
    "hedgehog",
    "heron",
    "horse",
    "hyena",
    "ibis",
    "iguana",
    "jackal",
    "jaguar",
    "kangaroo",
    "kiwi",
    "koala",
    "lemur",
    "leopard",
    "lion",
    "lizard",
    "llama",
    "lobster",
    "lynx",
    "mole",
    "monkey",
    "moose",
    "moth",
    "mouse",
    "mule",
    "newt",
    "octopus",
    "otter",
    "owl",
    "ox",
    "panda",
    "panther",
    "parrot",
    "pelican",
    "penguin",
    "pig",
    "pigeon",
    "puma",
    "rabbit",
    "raccoon",
    "rat",
    "raven",
    "seal",
    "shark",
    "sheep",
    "skunk",
    "sloth",
    "snail",
    "snake",
    "spider",
    "squid",
    "swan",
    "tiger",
    "toad",
    "turkey",
    "turtle",
    "walrus",
    "wasp",
    "whale",
    "wolf",
    "yak",
    "zebra",
]

_NAME = re.compile(r"^[a-z]+-[a-z]+-(\d+)$")


def random_prefix(rng: random.Random | None = None) -> str:
    rng = rng or random.SystemRandom()
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(ANIMALS)}"


def next_name(prefix: str, existing: list[str]) -> str:
    """``prefix-N`` with N one more than the highest N already used with that prefix."""
    top = 0
    for name in existing:
        m = _NAME.match(name)
        if m and name.startswith(prefix + "-"):
            top = max(top, int(m.group(1)))
    return f"{prefix}-{top + 1}"


_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_name(name: str) -> str:
    """Return ``name`` if it can name a run, else raise DstackError with the rule and a fixed name.

    A run name is a folder under the dstack home, a key segment in the store and a word on the
    command line (`dstack logs NAME`), so it is ASCII letters, digits, '.', '_' and '-', starting
    with a letter or digit, at most 100 characters.
    """
    if _RUN_NAME.fullmatch(name):
        return name
    msg = (
        f"run name {name!r} is not valid: use letters, digits, '.', '_' and '-', starting with a letter"
        " or digit (at most 100 characters)"
    )
    fixed = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:100]
    raise DstackError(msg, hint=f"e.g. --name {fixed}" if fixed else "e.g. --name baseline-lr-0.01")
