"""How often aggregation reports drift/jumps where there are none, and finds them where there are.

Constructed per-window probabilities (no model): a bump at the true offset with logit noise, and
a share of "junk" windows that confidently name a random class. Run from the repository root:

    python bench/trend_detection.py [--trials 200]
"""

from __future__ import annotations

import argparse

import numpy as np

from sparsesync_cli.analysis.aggregate import aggregate

GRID = np.linspace(-2, 2, 21)


def probs_for(rng, offsets, noise, junk, sharp=0.15):
    rows = []
    for o in offsets:
        if rng.random() < junk:
            o = rng.choice(GRID)
        z = np.maximum(-((GRID - o) ** 2) / (2 * sharp**2), -8) + noise * rng.standard_normal(21)
        p = np.exp(z - z.max())
        rows.append(p / p.sum())
    return np.array(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    n = ap.parse_args().trials
    stats = {k: [0, 0, 0] for k in ("constant", "random", "drift", "jump")}
    for seed in range(n):
        rng = np.random.default_rng(seed)
        w = int(rng.integers(6, 80))
        t = np.arange(w) * 5.0
        junk, noise = rng.choice([0.0, 0.2, 0.4]), rng.choice([0.3, 1.0])
        cases = {
            "constant": np.full(w, rng.choice(GRID[5:16])),
            "random": rng.choice(GRID, w),
        }
        total = rng.uniform(0.4, 1.6) * rng.choice([-1, 1])
        cases["drift"] = -total / 2 + total * t / t[-1]
        k = int(rng.integers(max(3, w // 10), w - max(3, w // 10) + 1))
        cases["jump"] = np.where(np.arange(w) < k, 0.0, rng.choice([-1, 1]) * rng.uniform(0.4, 1.6))
        for name, offsets in cases.items():
            agg = aggregate(probs_for(rng, offsets, noise, 1.0 if name == "random" else junk), GRID, t)
            s = stats[name]
            s[0] += agg.drift_sec_per_min is not None
            s[1] += agg.jump is not None
            if name == "drift" and agg.drift_sec_per_min is not None:
                s[2] += abs(agg.drift_sec_per_min - 60 * total / t[-1]) <= 0.1 * abs(60 * total / t[-1])
            if name == "jump" and agg.jump is not None:
                s[2] += abs(agg.jump.at_sec - (t[k - 1] + t[k]) / 2) <= 5.1
    print(f"{n} trials each; 6-80 windows of 5 s, junk share 0/20/40 %, logit noise 0.3/1.0")
    for name, (drift, jump, right) in stats.items():
        extra = f", {right} of them within 10 % / one window" if name in ("drift", "jump") else ""
        print(f"{name:9s} reported as drift: {drift:4d}   as jump: {jump:4d}{extra}")


if __name__ == "__main__":
    main()
