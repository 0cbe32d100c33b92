#!/usr/bin/python3
"""hook_receiver.py --port N --out FILE [--hold SECONDS]

A minimal webhook endpoint for the delivery benchmark: asyncio HTTP/1.1 with
keep-alive on 127.0.0.1, answers every POST with 200 at once, and appends one
line per delivery to FILE:  <arrival unix time>\t<event type>\t<hostname>
(the first "hostname" found anywhere in the JSON body). It does not check
signatures (test/lib/receiver.py does that in the end-to-end tests); here
the receiver must cost as little as possible. Exits after --hold seconds.
"""
import argparse
import asyncio
import json
import time


def find_host(o):
    if isinstance(o, dict):
        h = o.get("hostname")
        if isinstance(h, str):
            return h
        for v in o.values():
            h = find_host(v)
            if h:
                return h
    elif isinstance(o, list):
        for v in o:
            h = find_host(v)
            if h:
                return h
    return ""


async def serve(args):
    out = open(args.out, "a", buffering=1)

    async def conn(r, w):
        try:
            while True:
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 120)
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":", 1)[1])
                body = await r.readexactly(n) if n else b""
                t = time.time()
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {}
                typ = doc.get("type", "") if isinstance(doc, dict) else ""
                out.write(f"{t:.6f}\t{typ}\t{find_host(doc)}\n")
                await w.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(conn, "127.0.0.1", args.port, backlog=1024)
    async with srv:
        await asyncio.sleep(args.hold)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--hold", type=float, default=900)
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
