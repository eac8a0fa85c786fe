#!/usr/bin/env python3
"""Counts the atomic read-modify-write instructions a program executed.

From a callgrind profile taken with --dump-instr=yes, sums the execution
counts of the x86-64 instructions that are lock-prefixed or an xchg with a
memory operand (atomically locked even without the prefix), per object file.
Each such instruction drains the store buffer and costs a few nanoseconds
even when its cache line is already in the core's cache, so their number per
operation is a floor under a synchronising runtime's cost that instruction
counts alone do not show (docs/performance.md, the W8 note).

    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=cg.out prog args
    scripts/count_rmw.py cg.out

Addresses in the profile are run-time addresses; the load base of each object
is found by matching the lowest address executed in each function with the
function's symbol address in `objdump -d` (or, for a function callgrind names
by its address in a stripped object, that address); the most common
difference wins.
"""
import re
import subprocess
import sys
from collections import Counter, defaultdict


def parse_profile(path):
    """Returns ({(object, address): self count}, {(object, function): lowest address})."""
    names = {}
    obj = fn = None
    cost = defaultdict(int)
    lowest = {}
    last = 0
    skip_next = False  # the cost line after calls= is the call's inclusive cost

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?", rest)
        if not m:
            return rest
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        return names.get(key, "?")

    for line in open(path):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        head = line.split()[0]
        if "=" in head:
            key, _, rest = line.partition("=")
            if key == "ob":
                obj = name("ob", rest)
            elif key == "cob":
                name("ob", rest)
            elif key == "fn":
                fn = name("fn", rest)
            elif key == "cfn":
                name("fn", rest)
            elif key in ("fl", "fi", "fe", "cfi", "cfl"):
                name("fl", rest)
            elif key == "calls":
                skip_next = True
            continue
        if head[0] not in "0123456789+-*":
            continue
        if head.startswith("0x"):
            addr = int(head, 16)
        elif head[0] in "+-":
            step = int(head[1:], 16) if head[1:].startswith("0x") else int(head[1:])
            addr = last + step if head[0] == "+" else last - step
        elif head == "*":
            addr = last
        else:
            addr = int(head)
        last = addr
        if skip_next:
            skip_next = False
            continue
        fields = line.split()
        cost[(obj, addr)] += int(fields[2]) if len(fields) > 2 else 0
        if (obj, fn) not in lowest or addr < lowest[(obj, fn)]:
            lowest[(obj, fn)] = addr
    return cost, lowest


def disassemble(obj):
    """Returns ({demangled symbol: address}, {addresses of atomic RMW instructions})."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", obj],
                          capture_output=True, text=True, check=False).stdout
    symbols, rmw = {}, set()
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
        if m:
            symbols.setdefault(m.group(2), int(m.group(1), 16))
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(.*)$", line)
        if m:
            ins = m.group(2)
            if ins.startswith("lock ") or (ins.startswith("xchg") and "(" in ins):
                rmw.add(int(m.group(1), 16))
    return symbols, rmw


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    cost, lowest = parse_profile(sys.argv[1])
    total = sum(cost.values())
    rmw_total = 0
    for obj in sorted({o for o, _ in cost if o and o.startswith("/")}):
        symbols, rmw = disassemble(obj)
        bases = Counter()
        for (o, f), a in lowest.items():
            if o != obj or not f:
                continue
            if f in symbols:
                bases[a - symbols[f]] += 1
            elif f.startswith("0x"):  # callgrind names a function without a symbol by its address in the object
                bases[a - int(f, 16)] += 1
        if not bases:
            continue
        base = bases.most_common(1)[0][0]
        n = sum(c for (o, a), c in cost.items() if o == obj and a - base in rmw)
        if n:
            print(f"{n:>14,}  {obj}")
        rmw_total += n
    print(f"{rmw_total:>14,}  atomic read-modify-writes executed, of {total:,} instructions")


if __name__ == "__main__":
    main()
