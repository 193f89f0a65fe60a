"""python -m runner.providers.schemas extract PROVIDER... | generate | check"""

from __future__ import annotations

import json
import sys

from . import generate


def main(argv: list[str]) -> int:
    command, *providers = argv or ["check"]
    if command == "extract":
        from . import extract  # needs the published packages, only for this step
        for provider in providers or list(extract.EXTRACTORS):
            text = json.dumps(extract.EXTRACTORS[provider](), indent=1, ensure_ascii=False)
            (generate.PUBLISHED / f"{provider}.json").write_text(text + "\n", "utf-8")
        return 0
    if command == "generate":
        for path in generate.write_all():
            print(f"wrote {path.relative_to(generate.PROVIDERS.parent.parent)}")
        return 0
    if command == "check":
        stale = generate.stale()
        for path in stale:
            print(f"{path.relative_to(generate.PROVIDERS.parent.parent)} is stale: run "
                  "python -m runner.providers.schemas generate", file=sys.stderr)
        return 1 if stale else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
