#!/usr/bin/env python3
"""Verifies a Gatehouse identity assertion the way an app would, with PyJWT (Debian's
python3-jwt), not with Gatehouse's own code.

    verify.py JWKS_URL TOKEN AUDIENCE ISSUER            print the verified claims as JSON
    verify.py JWKS_URL TOKEN AUDIENCE ISSUER --expiry   verify (with an hour's leeway, so a
                                                        slow start cannot fail it), then poll
                                                        without leeway until PyJWT refuses it
                                                        as expired; print the claims
    verify.py JWKS_URL TOKEN AUDIENCE ISSUER --lenient  verify with an hour's leeway on the
                                                        times (the signature and `kid` as ever)

Exit status 0 on success, 1 with the reason on stderr otherwise.
"""

import json
import sys
import time

import jwt


def decode(client, token, audience, issuer, leeway=0):
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["ES256"],
        audience=audience,
        issuer=issuer,
        leeway=leeway,
        options={"require": ["iss", "aud", "sub", "iat", "exp"]},
    )


def main():
    url, token, audience, issuer = sys.argv[1:5]
    client = jwt.PyJWKClient(url, cache_keys=False)
    expiry = "--expiry" in sys.argv[5:]
    lenient = expiry or "--lenient" in sys.argv[5:]
    claims = decode(client, token, audience, issuer, leeway=3600 if lenient else 0)
    if expiry:
        deadline = time.time() + 30
        while True:
            try:
                decode(client, token, audience, issuer)
            except jwt.ExpiredSignatureError:
                if time.time() < claims["exp"]:
                    sys.exit(f"refused as expired before exp ({time.time()} < {claims['exp']})")
                break
            if time.time() > deadline:
                sys.exit("still accepted 30 s later")
            time.sleep(0.05)
    print(json.dumps({"header": jwt.get_unverified_header(token), "claims": claims}))


if __name__ == "__main__":
    try:
        main()
    except jwt.PyJWTError as e:
        sys.exit(f"{type(e).__name__}: {e}")
