"""Fit a logistic regression with plain gradient descent; save model/weights.json."""

import argparse
import csv
import json
import math
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--data", default="data")
parser.add_argument("--out", default="model")
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()

with open(Path(args.data) / "train.csv") as fh:
    rows = [(float(r["x"]), float(r["y"]), int(r["label"])) for r in csv.DictReader(fh)]

w = [0.0, 0.0, 0.0]
for epoch in range(1, args.epochs + 1):
    loss = 0.0
    grad = [0.0, 0.0, 0.0]
    for x, y, label in rows:
        p = 1 / (1 + math.exp(-(w[0] + w[1] * x + w[2] * y)))
        loss -= math.log(p if label else 1 - p)
        for i, f in enumerate((1.0, x, y)):
            grad[i] += (p - label) * f
    w = [wi - args.lr * g / len(rows) for wi, g in zip(w, grad)]
    if epoch % 5 == 0 or epoch == args.epochs:
        print(f"epoch {epoch}: loss {loss / len(rows):.4f}")

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "weights.json").write_text(json.dumps({"w": w}))
print(f"saved {out}/weights.json")
