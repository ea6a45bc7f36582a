"""Write a synthetic two-class data set: data/train.csv and data/test.csv."""

import argparse
import csv
import random
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="data")
parser.add_argument("--rows", type=int, default=2000)
parser.add_argument("--seed", type=int, default=7)
args = parser.parse_args()

rng = random.Random(args.seed)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
rows = []
for _ in range(args.rows):
    label = rng.randint(0, 1)
    cx, cy = (1.0, 1.0) if label else (-1.0, -1.0)
    rows.append((rng.gauss(cx, 0.9), rng.gauss(cy, 0.9), label))
split = int(len(rows) * 0.8)
for name, part in (("train.csv", rows[:split]), ("test.csv", rows[split:])):
    with open(out / name, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x", "y", "label"])
        w.writerows(part)
print(f"wrote {split} training and {len(rows) - split} test rows to {out}/")
