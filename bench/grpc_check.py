"""One real gRPC unary call for bench/run's pre-flight checks of the gRPC targets.

    /usr/bin/python3 bench/grpc_check.py HOST:PORT CA.pem|- METHOD [TOKEN|-]

Uses grpcio (Debian's python3-grpcio, as tests/grpc.rs does): a real client library, so a
check that passes here passes for a gRPC application's clients. The method is called on raw
bytes (no .proto compilation); the request is the message that h2load sends in the gRPC
scenarios (`{1: "ping"}`). With a CA file the channel is TLS, verified against it with the
name `localhost`; with `-` it is plaintext h2c (the `direct` target). With a token the call
carries `authorization: Bearer TOKEN`. Prints one JSON object: the status code as the library
reports it (name and number), its details, the response message (hex) and the trailing
metadata.
"""

import json
import sys

import grpc

REQUEST = b"\x0a\x04ping"


def main(target: str, ca: str, method: str, token: str | None) -> None:
    options = (("grpc.enable_http_proxy", 0),)
    if ca == "-":
        channel = grpc.insecure_channel(target, options)
    else:
        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        options += (("grpc.ssl_target_name_override", "localhost"),)
        channel = grpc.secure_channel(target, credentials, options)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    call = channel.unary_unary(method)
    try:
        response, info = call.with_call(REQUEST, metadata=metadata, timeout=10)
        code, details, trailing = info.code(), info.details(), info.trailing_metadata()
    except grpc.RpcError as error:
        response = None
        code, details, trailing = error.code(), error.details(), error.trailing_metadata()
    print(json.dumps({
        "code": code.name,
        "number": code.value[0],
        "details": details or "",
        "response": response.hex() if response is not None else None,
        "trailing": {k: v for k, v in (trailing or ()) if isinstance(v, str)},
    }))
    channel.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (3, 4):
        raise SystemExit(__doc__)
    main(args[0], args[1], args[2], args[3] if len(args) == 4 and args[3] != "-" else None)
