#!/usr/bin/python3
"""Sends one HTTP/2 request exactly as described, with no client-side checks, and prints what
came back as JSON. Used by tests/http2.rs to send what a well-behaved client library refuses
to: connection-specific fields, upper-case names, CR/LF/NUL in values, a content-length that
disagrees with the DATA, a :path that is not a path, :authority and host that disagree.

Usage: raw_client.py HOST PORT CA_FILE < request.json
request.json: {"headers": [[name, value], ...], "data": "text" or null}
Output: {"status": int or null, "body": str, "reset": int or null, "goaway": int or null}
Uses python3-h2 (Debian's package) with every outbound check turned off.
"""

import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events


def main():
    host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    request = json.load(sys.stdin)
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, port), timeout=10)
    tls = context.wrap_socket(raw, server_hostname="localhost")
    assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()

    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in request["headers"]]
    data = request.get("data")
    conn.send_headers(stream, headers, end_stream=data is None)
    if data is not None:
        conn.send_data(stream, data.encode("latin-1"), end_stream=True)
    tls.sendall(conn.data_to_send())

    result = {"status": None, "body": "", "reset": None, "goaway": None}
    body = b""
    done = False
    while not done:
        try:
            chunk = tls.recv(65536)
        except (ConnectionError, ssl.SSLError, socket.timeout):
            break
        if not chunk:
            break
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                for name, value in event.headers:
                    if name == b":status":
                        result["status"] = int(value)
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                done = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                result["reset"] = int(event.error_code)
                done = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                result["goaway"] = int(event.error_code)
                done = True
        pending = conn.data_to_send()
        if pending:
            try:
                tls.sendall(pending)
            except (ConnectionError, ssl.SSLError):
                break
    result["body"] = body.decode("utf-8", "replace")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
