"""util: logging, template rendering and the statistics every scenario uses."""

import math
import os
import re
import statistics
import sys
import time

_T0 = time.monotonic()


def log(msg):
    el = time.monotonic() - _T0
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')} +{el:6.0f}s] {msg}\n")
    sys.stderr.flush()


class Unavailable(Exception):
    """A scenario cannot measure something; the text becomes 'n/a (...)' in the table."""


def render(template, out, **kv):
    with open(template) as f:
        text = f.read()
    for k, v in kv.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise RuntimeError(f"{template}: unresolved placeholders {sorted(set(left))}")
    with open(out, "w") as f:
        f.write(text)
    return out


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100) of xs."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(1, min(len(s), math.ceil(p / 100.0 * len(s))))
    return s[k - 1]


def mkdir(*parts):
    d = os.path.join(*parts)
    os.makedirs(d, exist_ok=True)
    return d


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def wait_until(pred, secs, step=0.05):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
