"""Print the metrics files one key per line (`make metrics`): `dvc metrics show` puts every
key of every file in one table, 500+ columns wide.

    python scripts/show_metrics.py [REGEX]    # only keys matching REGEX, e.g. 'wer|eer\\.cb0'
"""

import json
import re
import sys
from pathlib import Path


def flatten(value, prefix=""):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from flatten(sub, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def main() -> None:
    pattern = re.compile(sys.argv[1] if len(sys.argv) > 1 else ".")
    for path in sorted(Path("metrics").rglob("*.json")):
        rows = [(k, v) for k, v in flatten(json.loads(path.read_text())) if pattern.search(k)]
        if not rows:
            continue
        print(f"\n{path}")
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"  {key:<{width}}  {shown}")


if __name__ == "__main__":
    main()
