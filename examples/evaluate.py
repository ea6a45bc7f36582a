"""Print the accuracy of model/weights.json on data/test.csv."""

import argparse
import csv
import json
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--data", default="data")
parser.add_argument("--model", default="model")
args = parser.parse_args()

w = json.loads((Path(args.model) / "weights.json").read_text())["w"]
with open(Path(args.data) / "test.csv") as fh:
    rows = [(float(r["x"]), float(r["y"]), int(r["label"])) for r in csv.DictReader(fh)]
right = sum((w[0] + w[1] * x + w[2] * y > 0) == bool(label) for x, y, label in rows)
print(f"accuracy: {right / len(rows):.3f} on {len(rows)} rows")
