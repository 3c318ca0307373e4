"""A real gRPC app and a real gRPC client for tests/grpc.rs, with grpcio (Debian's python3-grpcio).

Methods are registered as generic handlers on raw bytes, so no .proto compilation is needed;
the wire format is still gRPC as the library speaks it.

    peer.py server [--health SERVING|NOT_SERVING] [--unix PATH]
        prints "LISTENING <port>" (or "LISTENING unix"), then one line per event:
        "STARTED <method>", "CANCELLED <method>", "HEALTH <status>".
    peer.py client <port> <ca.pem> <scenario> [token] [arg]
        prints one JSON object: the code, details, metadata and what came back.
        Scenario `cancel` prints "SENT", cancels the call when a line arrives on stdin.
"""

import json
import sys
import threading

import grpc

SERVICE = "test.Echo"


def log(line):
    print(line, flush=True)


def metadata_dict(metadata):
    return {k: v for k, v in (metadata or ()) if isinstance(v, str)}


def unary(request, context):
    context.send_initial_metadata((("x-initial", "i1"),))
    seen = metadata_dict(context.invocation_metadata())
    context.set_trailing_metadata((("x-trailer", "t1"),))
    return json.dumps({"body": request.decode(), "metadata": seen}).encode()


def server_stream(request, context):
    for i in range(int(request.decode())):
        yield f"m{i}".encode()
    context.set_trailing_metadata((("x-trailer", "done"),))


def client_stream(requests, context):
    total = sum(len(r) for r in requests)
    return str(total).encode()


def bidi(requests, context):
    for r in requests:
        yield r


def hang(request, context):
    done = threading.Event()

    def ended():
        if not context.is_active():
            log("CANCELLED Hang")
        done.set()

    context.add_callback(ended)
    log("STARTED Hang")
    done.wait(60)
    return b""


def health_handler(status):
    # HealthCheckResponse { status = 1 (SERVING) | 2 (NOT_SERVING) }
    value = 1 if status == "SERVING" else 2

    def check(request, context):
        log(f"HEALTH {status}")
        return bytes([0x08, value])

    return check


def serve(args):
    from concurrent import futures

    health = "SERVING"
    unix = None
    while args:
        flag = args.pop(0)
        if flag == "--health":
            health = args.pop(0)
        elif flag == "--unix":
            unix = args.pop(0)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Admin": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Hang": grpc.unary_unary_rpc_method_handler(hang),
    }
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(SERVICE, handlers),
            grpc.method_handlers_generic_handler(
                "grpc.health.v1.Health",
                {"Check": grpc.unary_unary_rpc_method_handler(health_handler(health))},
            ),
        )
    )
    if unix:
        server.add_insecure_port(f"unix:{unix}")
        log("LISTENING unix")
    else:
        port = server.add_insecure_port("127.0.0.1:0")
        log(f"LISTENING {port}")
    server.start()
    # Ends when the test closes our stdin (or kills us).
    sys.stdin.read()
    server.stop(0)


def result_of_error(error):
    return {
        "code": error.code().name,
        "details": error.details(),
        "trailing": metadata_dict(error.trailing_metadata()),
    }


def client(args):
    port, ca, scenario = args[0], args[1], args[2]
    token = args[3] if len(args) > 3 and args[3] != "-" else None
    arg = args[4] if len(args) > 4 else None
    with open(ca, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    options = (
        ("grpc.ssl_target_name_override", "localhost"),
        ("grpc.enable_http_proxy", 0),
        ("grpc.max_receive_message_length", 8 << 20),
    )
    channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials, options)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    method = lambda name: f"/{SERVICE}/{name}"
    out = {}
    try:
        if scenario in ("unary", "admin"):
            call = channel.unary_unary(method("Unary" if scenario == "unary" else "Admin"))
            response, info = call.with_call(b"hello", metadata=metadata + (("x-custom", "c1"),), timeout=30)
            out = {
                "code": info.code().name,
                "response": json.loads(response),
                "initial": metadata_dict(info.initial_metadata()),
                "trailing": metadata_dict(info.trailing_metadata()),
            }
        elif scenario == "streams":
            stream = channel.unary_stream(method("ServerStream"))(b"5", metadata=metadata, timeout=30)
            messages = [m.decode() for m in stream]
            trailing = metadata_dict(stream.trailing_metadata())
            total = channel.stream_unary(method("ClientStream"))(
                iter([b"x" * 1000] * 10), metadata=metadata, timeout=30
            )
            echoed = [
                m.decode()
                for m in channel.stream_stream(method("Bidi"))(
                    iter([b"a", b"b", b"c"]), metadata=metadata, timeout=30
                )
            ]
            out = {
                "code": "OK",
                "server_stream": messages,
                "server_stream_trailing": trailing,
                "client_stream": total.decode(),
                "bidi": echoed,
            }
        elif scenario == "big":
            megabytes = int(arg)
            chunk = b"z" * (1 << 20)
            received = 0
            for m in channel.stream_stream(method("Bidi"))(
                (chunk for _ in range(megabytes)), metadata=metadata, timeout=600
            ):
                received += len(m)
            out = {"code": "OK", "bytes": received}
        elif scenario == "cancel":
            future = channel.unary_unary(method("Hang")).future(b"", metadata=metadata, timeout=60)
            log("SENT")
            sys.stdin.readline()
            future.cancel()
            out = {"code": "CANCELLED" if future.cancelled() else "NOT_CANCELLED"}
        else:
            raise SystemExit(f"unknown scenario {scenario}")
    except grpc.RpcError as error:
        out = result_of_error(error)
    log(json.dumps(out))


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "server":
        serve(rest)
    else:
        client(rest)
