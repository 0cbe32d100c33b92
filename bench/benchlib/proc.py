"""proc: processes the benchmark starts, and what it reads about them.

Every server is started in its own session (setsid: PGID == PID) and stopped
by that recorded process group only: TERM, up to 10 s, then KILL. Nothing is
ever stopped by name. Procs.stop_all() runs at exit and on SIGINT/SIGTERM, so
an interrupted run leaves nothing behind. CPU and memory are summed over the
whole process tree (nginx = master + workers), read from /proc.
"""

import os
import signal
import socket
import subprocess
import time

HZ = os.sysconf("SC_CLK_TCK")


class Proc:
    def __init__(self, name, popen, log_path):
        self.name, self.popen, self.log_path = name, popen, log_path

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""


class Procs:
    """The registry of every process this run started."""

    def __init__(self):
        self.live = []

    def start(self, name, argv, log_path, env=None, cwd=None):
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        logf = open(log_path, "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 env=full_env, cwd=cwd, start_new_session=True)
        finally:
            logf.close()
        proc = Proc(name, p, log_path)
        self.live.append(proc)
        return proc

    def stop(self, proc, term_wait=10.0):
        if proc is None:
            return None
        pgid = proc.pid
        if proc.alive():
            _killpg(pgid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=term_wait)
            except subprocess.TimeoutExpired:
                _killpg(pgid, signal.SIGKILL)
                try:
                    proc.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        # members of the group that outlive the leader (e.g. nginx workers)
        for _ in range(50):
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
        if _group_alive(pgid):
            _killpg(pgid, signal.SIGKILL)
        if proc in self.live:
            self.live.remove(proc)
        return proc.popen.returncode

    def stop_all(self):
        for proc in list(reversed(self.live)):
            self.stop(proc, term_wait=5.0)


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


# ---- /proc readings ---------------------------------------------------------

def tree_pids(root):
    """root and all its descendants."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
    out, stack = {root}, [root]
    while stack:
        p = stack.pop()
        for c, pp in parent.items():
            if pp == p and c not in out:
                out.add(c)
                stack.append(c)
    return out


def _status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid):
    return sum(_status_kb(p, "VmRSS") for p in tree_pids(pid))


def pss_kb(pid):
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    """utime+stime of the tree (all threads), in seconds."""
    ticks = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / HZ


# ---- sockets ----------------------------------------------------------------

def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, secs=20.0, proc=None, step=0.05):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if port_open(port):
            return True
        if proc is not None and not proc.alive():
            return False
        time.sleep(step)
    return False


def listeners_of(pid):
    """'addr:port' strings of TCP/UDP sockets the tree listens on (from ss)."""
    pids = tree_pids(pid)
    try:
        out = subprocess.run(["ss", "-Hltunp"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in out.splitlines():
        if any(f"pid={p}," in line for p in pids):
            cols = line.split()
            if len(cols) >= 5:
                found.append(cols[4])
    return found


def only_loopback(addrs):
    return all(a.startswith("127.") or a.startswith("[::1]") for a in addrs)
