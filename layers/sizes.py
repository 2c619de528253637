"""Unzipped sizes of a Lambda deployment: function code plus its layers, against Lambda's limit.

Lambda refuses a function whose code and layers together exceed 250 MB unzipped
(262,144,000 bytes). This sums the bytes of the regular files under each folder, which is what the
folders' zips extract to.

    python layers/sizes.py --label arm64 --layer build/layers/arm64/runtime \
        --layer build/layers/model --code build/function
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

LAMBDA_UNZIPPED_LIMIT = 262_144_000


def tree_bytes(root: Path) -> int:
    """Bytes of the regular files under root (symbolic links are not followed or counted)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if not os.path.islink(os.path.join(dirpath, name)):
                total += st.st_size
    return total


def measure(code: Path, layers: list[Path]) -> dict:
    parts = {"code": tree_bytes(code)}
    for layer in layers:
        parts[str(layer)] = tree_bytes(layer)
    total = sum(parts.values())
    return {
        "parts": parts,
        "total": total,
        "limit": LAMBDA_UNZIPPED_LIMIT,
        "headroom": LAMBDA_UNZIPPED_LIMIT - total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, required=True, help="the function code folder")
    parser.add_argument("--layer", type=Path, action="append", default=[], help="a layer folder")
    parser.add_argument("--label", default="", help="a name for this deployment (e.g. the arch)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    missing = [p for p in [args.code, *args.layer] if not p.is_dir()]
    if missing:
        print(f"sizes: not built: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    result = measure(args.code, args.layer)
    if args.json:
        print(json.dumps({"label": args.label, **result}, indent=2))
    else:
        mb = 1_000_000
        for name, size in result["parts"].items():
            print(f"{args.label:8} {size / mb:9.1f} MB  {name}")
        print(
            f"{args.label:8} {result['total'] / mb:9.1f} MB  total, limit "
            f"{LAMBDA_UNZIPPED_LIMIT / mb:.1f} MB, headroom {result['headroom'] / mb:.1f} MB"
        )
    return 0 if result["total"] <= LAMBDA_UNZIPPED_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
