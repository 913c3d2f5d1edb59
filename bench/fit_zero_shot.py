"""Refit the zero-shot confidence map (triage/local/zero_shot.py) and print its constants.

    .venv/bin/python -m bench.fit_zero_shot [--scored 77] [--draws 30] [--per-intent 20]

Data: CLINC150 (bench/data/clinc150, CC BY 3.0), only the intents that `python -m bench.bench_clinc --intents
SCORED` never scores: the 150 intents come domain by domain and the bench scores the first SCORED (77: five
domains and two travel intents), so the map is fitted on the other 73 (travel's remaining 13, utility, work,
small_talk, meta), their train and test queries alike. Each category's description is its name in words, written
as the tier writes it (tier.description_text), as in the bench.

Taxonomies are drawn as a help desk's are, from one business: domains in a random order, intents at random within
each, the first k taken (k from 2 to all), `--draws` per k, `--per-intent` queries of each intent at random. The
fit is maximum likelihood over every query of every draw (zero_shot.fit_map). Also printed: each domain's own best
temperature beside its crowding, the reason the map reads crowding. Vectors are cached in /tmp.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from bench.bench_clinc import FITTED_BEYOND, domain_of, draw, intent_order, load, vectors
from triage.local import zero_shot
from triage.local.head import fit_temperature
from triage.local.tier import description_text

SIZES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scored", type=int, default=FITTED_BEYOND, help="intents bench_clinc scores (not fitted on)")
    ap.add_argument("--draws", type=int, default=30)
    ap.add_argument("--per-intent", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pool = intent_order()[args.scored:]
    domain = domain_of()
    data = [r for r in load() if r["label"] in set(pool)]
    X = vectors([r["text"] for r in data])
    desc_vectors = vectors([description_text(i, i.replace("_", " ")) for i in pool])
    desc = {i: desc_vectors[n] for n, i in enumerate(pool)}
    by_intent: dict[str, list[int]] = defaultdict(list)
    for n, r in enumerate(data):
        by_intent[r["label"]].append(n)
    rng = np.random.default_rng(args.seed)
    cases: list[zero_shot.Case] = []
    for k in [s for s in SIZES if s < len(pool)] + [len(pool)]:
        for _ in range(args.draws if k < len(pool) else 1):
            names = draw(pool, k, rng, domain)
            idx, y = [], []
            for j, name in enumerate(names):
                pick = rng.choice(by_intent[name], min(args.per_intent, len(by_intent[name])), replace=False)
                idx += pick.tolist()
                y += [j] * len(pick)
            cases.append((X[idx], np.stack([desc[n] for n in names]), np.array(y)))
    print(f"CLINC150, the {len(pool)} intents bench_clinc --intents {args.scored} never scores "
          f"({', '.join(dict.fromkeys(domain[i] for i in pool))}): {len(data)} queries")
    print(f"{len(cases)} taxonomies drawn domain by domain, k = 2..{len(pool)}, up to {args.per_intent} queries "
          f"an intent: {sum(len(c[2]) for c in cases)} queries in all")
    print(f"{'domain':>20} {'intents':>7} {'crowding':>8} {'best T':>7}")
    for d in dict.fromkeys(domain[i] for i in pool):
        names = [i for i in pool if domain[i] == d]
        idx = [n for i in names for n in by_intent[i]]
        D = np.stack([desc[i] for i in names])
        truth = np.array([names.index(data[n]["label"]) for n in idx])
        print(f"{d:>20} {len(names):>7} {zero_shot.crowding(D):>8.3f} {fit_temperature(X[idx] @ D.T, truth):>7.4f}")
    coef, loss = zero_shot.fit_map(cases)
    print(f"fitted: log T = {coef[0]} + {coef[1]} * crowding + {coef[2]} * log k  (mean NLL {loss:.4f})")
    print(f"MAP = {coef}")
    print("shipped in triage/local/zero_shot.py:", zero_shot.MAP,
          "(the same)" if tuple(coef) == tuple(zero_shot.MAP) else "(differs: paste the line above to ship this fit)")


if __name__ == "__main__":
    main()
