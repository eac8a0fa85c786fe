"""The report of bench/compare: markdown tables, the SPEC §9 bars and an SVG chart.

A summary maps workload -> side -> cell, where a cell has status ("ok", "timeout" or
"failed") and, when any run succeeded, median/min/max/unit/runs.
"""
import math
import re
from pathlib import Path

BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"

# SPEC §9 bars: (bar, workload prefix, peer or None for an absolute csp value, limit).
# A ratio bar is met when csp/peer <= limit; the W6 bar when csp's value <= limit.
BARS = [
    ("W1-W4 at least 2x faster than Go", ("w1_", "w2_", "w3_", "w4_"), "go", 0.5),
    ("W1-W4 no slower than crossbeam-channel", ("w1_", "w2_", "w3_", "w4_"), "crossbeam", 1.0),
    ("W5 spawn at least 5x faster than Go", ("w5_",), "go", 0.2),
    ("W6 at most 256 bytes per parked goroutine", ("w6_",), None, 256),
    ("W7 sieve at least 2x faster than Go", ("w7_",), "go", 0.5),
    ("W8 fib within 1.5x of oneTBB task_group", ("w8_",), "tbb", 1.5),
    ("W9 TCP echo: as many round trips/s as Go, 80% of a C epoll loop", ("w9_",), "go", 1.0),
]

COLOURS = {"go": "#00add8", "boost_fiber": "#c0392b", "crossbeam": "#e67e22", "tbb": "#27ae60"}


def fmt_ratio(r):
    return f"{r:.2f}" if r >= 0.1 else f"{r:.3f}"


def fmt(x):
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def is_matrix(workload):
    return workload.startswith("bounded")


class Report:
    def __init__(self, summary, supports, info, sides, labels, pending):
        self.summary, self.supports, self.info = summary, supports, info
        self.sides, self.labels, self.pending = sides, labels, pending
        self.peers = [s for s in sides if s != "csp"]

    # -- cells ------------------------------------------------------------
    def cell(self, workload, side):
        if side in self.info["missing"]:
            return None, "not built"
        if workload not in self.supports.get(side, ()):
            return None, "n/a"
        c = self.summary.get(workload, {}).get(side)
        if not c or "median" not in c:
            return None, c["status"] if c else "-"
        text = f"{fmt(c['median'])} ({fmt(c['min'])}-{fmt(c['max'])})"
        if c["failures"]:
            text += f" [{c['failures']} {c.get('failed_as', 'failed')}]"
        return c, text

    def ratio(self, workload, peer):
        c = self.summary.get(workload, {}).get("csp", {})
        p = self.summary.get(workload, {}).get(peer, {})
        if c.get("median") and p.get("median"):
            return c["median"] / p["median"]
        return None

    def unit(self, workload):
        for c in self.summary.get(workload, {}).values():
            if "unit" in c:
                return c["unit"]
        return "-"

    # -- markdown ---------------------------------------------------------
    def table(self, workloads):
        head = ["workload", "unit", "csp"]
        for p in self.peers:
            head += [self.labels[p], f"csp/{self.labels[p]}"]
        rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * 2 + " ---: |" * (len(head) - 2)]
        for w in workloads:
            if w in self.pending and w not in self.summary:
                rows.append(f"| {w} | - | {self.pending[w]} |" + " |" * (len(head) - 3))
                continue
            cells = [w, self.unit(w), self.cell(w, "csp")[1]]
            for p in self.peers:
                r = self.ratio(w, p)
                cells += [self.cell(w, p)[1], f"**{fmt_ratio(r)}**" if r is not None else "-"]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def workloads(self):
        names = list(self.summary)
        spec = [w for w in names if not is_matrix(w)] + [w for w in self.pending if w not in self.summary]
        return spec, [w for w in names if is_matrix(w)]

    def bars(self):
        spec, _ = self.workloads()
        rows = ["| bar | workload | measured | status |", "| --- | --- | ---: | --- |"]
        for bar, prefixes, peer, limit in BARS:
            for w in (w for w in spec if w.startswith(prefixes)):
                if w in self.pending and w not in self.summary:
                    rows.append(f"| {bar} | {w} | - | **not measured by this harness** ({self.pending[w]}) |")
                    continue
                if peer is None:
                    c = self.summary.get(w, {}).get("csp", {})
                    got = c.get("median")
                    shown = f"{fmt(got)} {c.get('unit', '')}" if got is not None else "-"
                else:
                    got = self.ratio(w, peer)
                    shown = f"csp/{self.labels[peer]} = {fmt_ratio(got)}" if got is not None else "-"
                status = ("**met**" if got is not None and got <= limit else
                          "**not met**" if got is not None else "**not measured**" + self.why_missing(w, peer))
                rows.append(f"| {bar} | {w} | {shown} | {status} |")
        return "\n".join(rows)

    def why_missing(self, workload, peer):
        reasons = [f"{self.labels[side]}: {text}" for side in ("csp", peer) if side
                   for c, text in [self.cell(workload, side)] if c is None]
        return f" ({'; '.join(reasons)})" if reasons else ""

    def markdown(self, chart):
        i = self.info
        spec, matrix = self.workloads()
        left_out = "".join(f" {self.labels[s]} was left out: {why}." for s, why in i["missing"].items())
        parts = [
            f"Measured {i['date']} on commit `{i['commit']}`, {i['mode']} mode, {i['reps']} repetitions per "
            f"side, {i['cores']} cores, load average {i['load_before']:.2f} before and {i['load_after']:.2f} "
            f"after ({i['seconds']} s of runs).{left_out} Each cell is the median (min-max) of the "
            "repetitions; a ratio is csp's median over the peer's (lower is better for csp); n/a: the peer "
            "does not run that workload.",
            "### SPEC §9 workloads", self.table(spec),
            "### crossbeam-channel's matrix", self.table(matrix),
            "### SPEC §9 bars (from this run)", self.bars(),
            "### Chart", f"![csp/peer ratios, log scale]({chart})",
        ]
        return "\n\n".join(parts) + "\n"

    # -- SVG chart --------------------------------------------------------
    def svg(self):
        """Horizontal bars of csp/peer per workload on a log scale, growing from 1:
        left of the line csp is faster, right of it slower."""
        spec, matrix = self.workloads()
        groups = [(title, [w for w in ws if any(self.ratio(w, p) for p in self.peers)])
                  for title, ws in (("SPEC §9 workloads", spec), ("crossbeam-channel matrix", matrix))]
        label_w, plot_w, bar_h, lo, hi = 200, 560, 7, 0.001, 100.0

        def x(r):
            r = min(max(r, lo), hi)
            return label_w + plot_w * (math.log10(r) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

        out, y = [], 50
        for p_i, p in enumerate(self.peers):  # legend
            out.append(f'<rect x="{label_w + p_i * 130}" y="12" width="12" height="12" fill="{COLOURS[p]}"/>'
                       f'<text x="{label_w + p_i * 130 + 16}" y="23">csp/{self.labels[p]}</text>')
        for title, ws in groups:
            if not ws:
                continue
            out.append(f'<text x="4" y="{y + 12}" font-weight="bold">{title}</text>')
            y += 20
            for w in ws:
                ratios = [(p, self.ratio(w, p)) for p in self.peers if self.ratio(w, p)]
                h = bar_h * len(ratios) + 6
                out.append(f'<text x="{label_w - 6}" y="{y + h / 2 + 4}" text-anchor="end">{w}</text>')
                for k, (p, r) in enumerate(ratios):
                    x0, x1 = sorted((x(1), x(r)))
                    out.append(f'<rect x="{x0:.1f}" y="{y + 3 + k * bar_h}" width="{max(x1 - x0, 1):.1f}" '
                               f'height="{bar_h - 1}" fill="{COLOURS[p]}"><title>{w}: csp/{self.labels[p]} '
                               f'= {r:.2f}</title></rect>')
                y += h
            y += 8
        top, bottom = 40, y
        axis = []
        for t in (0.001, 0.01, 0.1, 0.5, 1, 2, 10, 100):
            dash = "" if t == 1 else ' stroke-dasharray="3,3"'
            axis.append(f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{bottom}" stroke="#888"{dash}/>'
                        f'<text x="{x(t):.1f}" y="{bottom + 14}" text-anchor="middle">{t:g}</text>')
        axis.append(f'<text x="{label_w + plot_w / 2}" y="{bottom + 30}" text-anchor="middle">csp time / peer '
                    'time (log scale; left of 1: csp faster; 0.5: the 2x bar)</text>')
        height = bottom + 40
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 20}" height="{height}" '
                f'font-family="sans-serif" font-size="11">\n<rect width="100%" height="100%" fill="white"/>\n'
                + "\n".join(axis + out) + "\n</svg>\n")


def write_docs(path, text):
    """Replaces the generated part of docs/performance.md, between the markers."""
    doc = Path(path).read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"compare: {path} has no {BEGIN} ... {END} section to fill")
    Path(path).write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}{END}", doc))
