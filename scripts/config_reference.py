"""Write docs/configuration.md, the config reference, from the field docs of
fastrnn/config.py (python scripts/config_reference.py [--check])."""
import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastrnn.config import SECTIONS  # noqa: E402

OUT = ROOT / "docs" / "configuration.md"

INTRO = """\
# Configuration

<!-- Written by scripts/config_reference.py from fastrnn/config.py; edit those, not this. -->

A run's config is the defaults below, then the YAML file, then `section.key=value`
overrides on the command line (values read as YAML, e.g. `optim.lr=3e-3`,
`optim.clip_norm=null`). Every key is checked on load: an unknown key (with a
did-you-mean), a value of the wrong type or out of range, or a key given twice in a
file is one line naming it, and exit code 2. What a file (or an override, or the JSON
inside a checkpoint or export) may hold is bounded: no anchors or aliases (`&a`, `*a`),
nesting at most 32 deep, at most 100,000 values, whole numbers below 2^63. The resolved
config is written to the run
folder as `config.yaml`. How the keys work together: [training](training.md) (resume,
schedules, early stopping), [data](data.md), [models](models.md).
"""


def _default(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return str(value)


def _range(meta):
    parts = []
    if meta["choices"]:
        parts.append(" \\| ".join(f"`{c}`" for c in meta["choices"]))
    lo = (f">= {meta['min']}" if meta["min"] is not None else
          f"> {meta['min_open']}" if meta["min_open"] is not None else None)
    hi = (f"<= {meta['max']}" if meta["max"] is not None else
          f"< {meta['max_open']}" if meta["max_open"] is not None else None)
    parts += [p for p in (lo, hi) if p]
    if meta["optional"]:
        parts.append("or null")
    return ", ".join(parts)


def reference():
    """The whole page, as text."""
    lines = [INTRO]
    for section, cls in SECTIONS.items():
        lines += [f"## {section}", "", f"{cls.__doc__.strip()}" if cls.__doc__ and
                  not cls.__doc__.startswith(cls.__name__) else "", "",
                  "| key | default | accepts | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            doc = f.metadata["doc"].replace("|", "\\|")
            lines.append(f"| `{section}.{f.name}` | `{_default(f.default)}` | "
                         f"{_range(f.metadata)} | {doc} |")
        lines.append("")
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if docs/configuration.md is not up to date")
    args = ap.parse_args(argv)
    text = reference()
    if args.check:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date; run python scripts/config_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
