"""report: collects every figure and prints the one Markdown table.

A row is one metric; a column one system (direct = straight to the upstream,
the ceiling); each cell is the median over the runs with min-max beside it;
the last columns are Hee's median divided by each peer's. A cell that could
not be measured holds "n/a" with a numbered note saying why. The aims of the
issue are checked below the table from the same medians.
"""

import json
import statistics

SYSTEMS = ["direct", "nginx", "haproxy", "caddy", "hee", "nginx-pinned", "haproxy-pinned", "hee-pinned"]
PEERS = ["nginx", "haproxy", "caddy"]


class Row:
    def __init__(self, key, label, decimals, better):
        self.key, self.label, self.decimals, self.better = key, label, decimals, better
        self.values = {}
        self.na = {}


class Results:
    def __init__(self):
        self.rows = {}
        self.notes = []
        self.scenario_secs = {}

    def row(self, key, label, decimals=0, better=None):
        if key not in self.rows:
            self.rows[key] = Row(key, label, decimals, better)
        return self.rows[key]

    def declare(self, keys):
        """Fixes the order of a scenario's rows before any value arrives."""
        for k, label, dec in keys:
            self.row(k, label, dec)

    def add(self, key, label, system, value, decimals=0, better=None):
        r = self.row(key, label, decimals, better)
        if value is None or value != value:
            return
        r.values.setdefault(system, []).append(float(value))
        r.na.pop(system, None)

    def na(self, key, label, system, reason, decimals=0, better=None):
        r = self.row(key, label, decimals, better)
        if system not in r.values:
            r.na[system] = reason

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def med(self, key, system):
        r = self.rows.get(key)
        v = r.values.get(system) if r else None
        return statistics.median(v) if v else None

    # ---- output -------------------------------------------------------------------
    def markdown(self, header=""):
        cols = [s for s in SYSTEMS if any(s in r.values or s in r.na for r in self.rows.values())]
        ratio_peers = [p for p in PEERS if p in cols] if "hee" in cols else []
        notes = []

        def note_ref(reason):
            if reason not in notes:
                notes.append(reason)
            return f"n/a [{notes.index(reason) + 1}]"

        out = [header] if header else []
        out.append("| Metric | " + " | ".join(cols) + "".join(f" | Hee ÷ {p}" for p in ratio_peers) + " |")
        out.append("|---|" + "---:|" * (len(cols) + len(ratio_peers)))
        for r in self.rows.values():
            cells = []
            for s in cols:
                v = r.values.get(s)
                if v:
                    cells.append(_cell(v, r.decimals))
                elif s in r.na:
                    cells.append(note_ref(r.na[s]))
                else:
                    cells.append("–")
            for p in ratio_peers:
                h, q = self.med(r.key, "hee"), self.med(r.key, p)
                cells.append(f"{h / q:.2f}×" if h is not None and q else "–")
            out.append(f"| {r.label} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("Cells: median over the runs (min–max). Hee ÷ peer compares medians; whether higher or lower "
                   "is better depends on the row (requests/s: higher; CPU, latency, memory: lower).")
        if notes:
            out.append("")
            for i, n in enumerate(notes, 1):
                out.append(f"[{i}] {n}")
        aims = self.aims()
        if aims:
            out += ["", "Aims (ratios of medians from this run):", ""]
            out += [f"- {a}" for a in aims]
        if self.notes:
            out += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def aims(self):
        """One line per aim of the issues: figures, ratio and verdict, or
        'not measured' when either side is missing."""
        m = self.med

        def aim(title, outcome):
            """outcome: (met?, figures) or None when not measured."""
            if outcome is None:
                return f"{title}: not measured"
            return f"{title}: {outcome[1]} — {'**met**' if outcome[0] else '**not met**'}"

        h, n, a = m("ka_rps", "hee"), m("ka_rps", "nginx"), m("ka_rps", "haproxy")
        b = max((x for x in (n, a) if x), default=None)
        res = [aim("Proxied keep-alive requests/s ≥ 1.2 × the better of nginx and HAProxy",
                   (h / b >= 1.2, f"{h:,.0f} vs {b:,.0f} = {h / b:.2f}×{self._paired('ka_rps')}"
                                  f"{self._pinned_ratio('ka_rps')}")
                   if h is not None and b else None)]
        h, n = m("hs_cpu_us", "hee"), m("hs_cpu_us", "nginx")
        res.append(aim("Proxy CPU per handshake ≤ nginx's",
                       (h <= n, f"{h:.0f} µs vs {n:.0f} µs = {h / n:.2f}×{self._pinned_ratio('hs_cpu_us', 'nginx')}")
                       if h is not None and n else None))
        h, c = m("od_seq_med_ms", "hee"), m("od_seq_med_ms", "caddy")
        res.append(aim("First-request latency ≤ ¼ of Caddy's",
                       (h <= c / 4, f"{h:.0f} ms vs {c:.0f} ms = {h / c:.3f}×") if h is not None and c else None))
        worst = min(self.rows["od_conc_ok"].values.get("hee", [0])) if "od_conc_ok" in self.rows else 0
        res.append(aim("All 50 simultaneous new names served",
                       (worst >= 50, f"worst run {worst:.0f}/50") if m("od_conc_ok", "hee") is not None else None))
        h, c = m("kb_per_cert", "hee"), m("kb_per_cert", "caddy")
        res.append(aim("Memory per cached certificate ≤ ¼ of Caddy's",
                       (h <= c / 4, f"{h:.2f} KB vs {c:.2f} KB = {h / c:.2f}×") if h is not None and c else None))
        h, n = m("kb_per_conn", "hee"), m("kb_per_conn", "nginx")
        res.append(aim("Memory per idle TLS connection ≤ ⅔ of nginx's",
                       (h <= n * 2 / 3, f"{h:.1f} KB vs {n:.1f} KB = {h / n:.2f}×") if h is not None and n else None))
        return res

    def _paired(self, key, hee="hee", peers=("nginx", "haproxy")):
        """Hee ÷ the better of the peers run by run (the systems of one run
        are measured within a minute of each other, so slow spells of a
        shared machine cancel out), or '' without a value per run."""
        r = self.rows.get(key)
        v = {s: r.values.get(s, []) for s in (hee,) + peers} if r else {}
        n = len(v.get(hee, []))
        if n < 2 or any(len(x) != n for x in v.values()):
            return ""
        q = [v[hee][i] / max(v[p][i] for p in peers) for i in range(n)]
        return f" (run by run: {', '.join(f'{x:.2f}' for x in q)}; median {statistics.median(q):.2f}×)"

    def _pinned_ratio(self, key, *peers):
        """The same comparison with every system's workers pinned to CPUs
        (pinned rows), which the verdict does not use: stock configs decide."""
        peers = tuple(p + "-pinned" for p in (peers or ("nginx", "haproxy")))
        h = self.med(key, "hee-pinned")
        vals = [x for x in (self.med(key, p) for p in peers) if x]
        if h is None or not vals:
            return ""
        b = max(vals) if key == "ka_rps" else min(vals)
        paired = self._paired(key, "hee-pinned", peers) if key == "ka_rps" else ""
        return f"; all pinned: {h:,.1f} vs {b:,.1f} = {h / b:.2f}×{paired}"

    def dump(self, path):
        doc = {"rows": [{"key": r.key, "label": r.label, "values": r.values, "na": r.na}
                        for r in self.rows.values()], "notes": self.notes, "scenario_secs": self.scenario_secs}
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)


def _fmt(x, d):
    return f"{x:,.{d}f}"


def _cell(v, d):
    med = statistics.median(v)
    if len(v) == 1:
        return _fmt(med, d)
    lo, hi = min(v), max(v)
    return f"{_fmt(med, d)} ({_fmt(lo, d)}–{_fmt(hi, d)})"
