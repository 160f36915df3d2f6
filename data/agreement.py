"""Inter-annotator agreement between the two labelling passes: ``python -m data.agreement``.

Cohen's kappa (scikit-learn) between the first pass and the independent second pass over the same units,
and between the adjudicated final labels and the second pass.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from data.labeled_units import load_labeled

LABELED = Path(__file__).resolve().parent / "labeled"


def pass_agreement(first: list[dict], second: list[dict]) -> dict:
    """Kappa, raw agreement and the disagreement pairs over the units both passes labelled."""
    by_id = {record["unit_id"]: record["label"] for record in first}
    pairs = [(by_id[record["unit_id"]], record["label"]) for record in second if record["unit_id"] in by_id]
    a, b = zip(*pairs, strict=True)
    return {
        "units": len(pairs),
        "kappa": float(cohen_kappa_score(a, b)),
        "agreement": sum(x == y for x, y in pairs) / len(pairs),
        "disagreements": Counter((x, y) for x, y in pairs if x != y),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=Path, default=LABELED / "seeds_pass1.jsonl")
    parser.add_argument("--second", type=Path, default=LABELED / "seeds_pass2.jsonl")
    parser.add_argument("--final", type=Path, default=LABELED / "seeds.jsonl")
    args = parser.parse_args()
    second = load_labeled(args.second)
    for name, path in (("first pass vs second pass", args.first), ("final (adjudicated) vs second pass", args.final)):
        result = pass_agreement(load_labeled(path), second)
        print(f"{name}: kappa {result['kappa']:.3f}, raw agreement {result['agreement']:.3f} "
              f"over {result['units']} units")
        for (x, y), count in result["disagreements"].most_common():
            print(f"  {x} -> {y}: {count}")


if __name__ == "__main__":
    main()
