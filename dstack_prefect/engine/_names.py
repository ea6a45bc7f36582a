"""Run names: adjective-animal-N, as old dstack made them (e.g. grumpy-zebra-1), or one the user
picks with `dstack run --name` (as dstack 0.10 added), checked by ``check_run_name``."""

from __future__ import annotations

import random
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dstack_prefect._words import word_problem
from dstack_prefect.errors import DstackError

if TYPE_CHECKING:
    from dstack_prefect.engine._api import PrefectAPI

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


def check_run_name(name: str) -> str:
    """Return ``name`` if it can name a run (the rule in ``dstack_prefect._words``: a folder
    under the dstack home, a store key and a word on the command line), else raise DstackError
    with the rule and a fixed name."""
    problem = word_problem("run", name)
    if problem is None:
        return name
    msg, fixed = problem
    raise DstackError(msg, hint=f"e.g. --name {fixed}" if fixed else "e.g. --name baseline-lr-0.01")


def claim_run_name(api: PrefectAPI, flow_run: dict[str, Any]) -> None:
    """Keep the just-created ``flow_run``'s name only when no other run of that name came first.

    Two `dstack run --name X` (or two drawn names alike) started at the same moment both find X
    unused before either creates its run; each then checks here. The later one (by creation
    time, then id: every side reads the same order from the server) deletes its flow run,
    before anything ran, and raises DstackError; the earlier one keeps the name whichever
    checks first.
    """
    name = str(flow_run["name"])
    mine = _order(flow_run)
    if all(_order(r) >= mine for r in api.flow_runs(names=[name]) if r["id"] != flow_run["id"]):
        return
    api.delete_flow_run(str(flow_run["id"]))
    msg = f"another run named '{name}' was started at the same moment"
    raise DstackError(msg, hint="pick another --name, or run again for a drawn one")


def _order(flow_run: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(str(flow_run["created"])), str(flow_run["id"])
