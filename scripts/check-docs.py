#!/usr/bin/env python3
"""Checks that every public name of csp is documented: each name declared in
namespace csp (not csp::detail) by a header under include/csp/ must appear in
docs/reference.md, or, for the pages that own their part of the API (e.g.
networking, testing), in another page under docs/. Exits 1 and lists the
undocumented names otherwise. CTest runs it.

Headers are scanned as text: csp's headers put namespace-scope declarations at
column 0 and wrap internals in `namespace detail { ... }  // namespace detail`.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADERS = sorted((ROOT / "include" / "csp").rglob("*.hpp"))
REFERENCE = ROOT / "docs" / "reference.md"

DETAIL_OPEN = re.compile(r"^namespace (csp::)?detail \{")
DETAIL_CLOSE = re.compile(r"^\}\s*// namespace (csp::)?detail\b")
DECLARATIONS = [
    re.compile(r"^(?:class|struct)\s+(?:\[\[\w+\]\]\s+)?(\w+)"),
    re.compile(r"^(?:inline\s+)?concept\s+(\w+)"),
    re.compile(r"^using\s+(\w+)\s*="),
    re.compile(r"^inline\s+constexpr\s+[\w:<>]+\s+(\w+)"),
    re.compile(r"^enum\s+class\s+(\w+)"),
    re.compile(r"^#define\s+(CSP_\w+)"),
    # a function at namespace scope: `<return type> name(`, the name maybe qualified
    re.compile(r"^(?!template|namespace|return|using|#|//|\}|\s)[\w:<>,&\*\s]*?\b(\w+)\s*\("),
]


CLASS_OPEN = re.compile(r"^(class|struct)\s+(?:\[\[\w+\]\]\s+)?(\w+(?:::\w+)*)\b[^;]*$")
ACCESS = re.compile(r"^(public|private|protected):")
MEMBER = re.compile(r"^    (?!\s)(?!return|using|friend|static_assert|template|//)(?:\[\[[\w:, ]+\]\]\s+)?[\w:<>,&\*\s~]*?\b(\w+)\s*\(")


def public_names(header: pathlib.Path):
    """Namespace-scope names, then Class::member for public member functions."""
    in_detail, cls, public = False, None, False
    for line in header.read_text().splitlines():
        if DETAIL_OPEN.match(line):
            in_detail = True
        elif DETAIL_CLOSE.match(line):
            in_detail = False
        elif in_detail:
            continue
        elif cls:
            if line.startswith("};"):
                cls = None
            elif ACCESS.match(line):
                public = line.startswith("public")
            elif public:
                m = MEMBER.match(line)
                if m and m.group(1) not in (cls, "operator"):
                    yield f"{cls}::{m.group(1)}"
        else:
            for pattern in DECLARATIONS:
                m = pattern.match(line)
                if m:
                    yield m.group(1)
                    break
            m = CLASS_OPEN.match(line)
            if m:
                cls, public = m.group(2), m.group(1) == "struct"


def mentioned(name: str, text: str) -> bool:
    name = name.split("::")[-1]  # a member is documented where its name is (in its class's table)
    return re.search(r"(?<![\w])" + re.escape(name) + r"(?![\w])", text) is not None


def main() -> int:
    reference = REFERENCE.read_text()
    other_pages = "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")) if p != REFERENCE)
    missing, elsewhere, count = [], [], 0
    for header in HEADERS:
        rel = header.relative_to(ROOT).as_posix()
        for name in sorted(set(public_names(header))):
            count += 1
            if mentioned(name, reference):
                continue
            (elsewhere if mentioned(name, other_pages) else missing).append(f"{rel}: {name}")
    for entry in elsewhere:
        print(f"documented outside docs/reference.md: {entry}")
    if missing:
        print("not documented anywhere under docs/ (add them to docs/reference.md):", file=sys.stderr)
        for entry in missing:
            print(f"  {entry}", file=sys.stderr)
        return 1
    print(f"all {count} public names of include/csp are documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
