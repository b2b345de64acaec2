#!/usr/bin/env python3
"""Writes the seed corpus under seeds/<target>/: valid requests and both sides of each rule,
so that the fuzzer starts from inputs that pass the first checks. Run from fuzz/; the output
is committed, so this runs only when the seeds change."""

import base64
import hashlib
import hmac
import json
import os
import shutil

SECRET = b"fuzz-secret-fuzz-secret-fuzz-secret-0123456789"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, value):
    if isinstance(value, bool):
        return varint(number << 3) + varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def message(*fields):
    return b"".join(field(n, v) for n, v in fields if v is not None)


def upsert(key="SS-0001", site=None, contact=None, **extra):
    scope = (2, message((1, "S_JUNO(PROD)"), (2, site))) if site else (1, message((1, "S_JUNO(PROD)")))
    numbers = {"secondary_id": 4, "register": 6, "request_id": 7, "validate_only": 8,
               "etag": 9, "reason_for_change": 10}
    fields = [scope, (3, key)]
    if contact is not None:
        names = ["first_name", "last_name", "middle_name", "email_address", "phone_number",
                 "street_address1", "street_address2", "city", "state", "country",
                 "postal_code", "full_dob", "hospital_number"]
        fields.append((5, message(*[(names.index(k) + 1, v) for k, v in contact.items()])))
    fields += [(numbers[k], v) for k, v in extra.items()]
    return message(*fields)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, header=None, secret=SECRET):
    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def write(target, seeds):
    folder = os.path.join("seeds", target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for i, seed in enumerate(seeds):
        with open(os.path.join(folder, f"seed-{i:02}"), "wb") as f:
            f.write(seed if isinstance(seed, bytes) else seed.encode())


full = {"first_name": "Ada", "last_name": "Lovelace", "email_address": "ada@example.org",
        "phone_number": "+44 2071234567", "full_dob": "1815-12-10", "city": "London",
        "hospital_number": "H-1", "postal_code": "W1"}
upserts = [
    upsert(),
    upsert(key="", site="S_OHI0(TEST)", contact=full, register=True, request_id="r-1",
           reason_for_change="moved", etag="abc", secondary_id=""),
    upsert(key="A" * 30), upsert(key="A" * 31), upsert(key="  straße  "), upsert(key="İSTANBUL"),
    upsert(key="ＡＢ"), upsert(key="e\u0301"), upsert(key="<b>"), upsert(key="a\u0000b"),
    upsert(key="a\u200bb"), upsert(key="😀" * 30),
    upsert(contact={"email_address": "not-an-email", "phone_number": "12", "full_dob": "2999-01-01"}),
    upsert(contact={"full_dob": "1899-12-31", "first_name": "x" * 36, "state": ""}),
    upsert(contact={}), upsert(request_id="x" * 64), upsert(request_id="x" * 65),
    upsert(reason_for_change="é" * 1001), upsert(secondary_id="S" * 40, validate_only=True),
]
write("upsert_request", upserts)
write("upsert_service", upserts)

forever = 4102444800
good = {"sub": "dm.juno", "preferred_username": "dm.juno", "iat": 1700000000,
        "nbf": 1700000000, "exp": forever}
write("authorization", [
    "Bearer " + jwt(good),
    "bearer " + jwt({"sub": "dm.juno", "exp": forever}),
    "Bearer " + jwt(dict(good, preferred_username="")),
    "Bearer " + jwt(dict(good, preferred_username="a\u0007b")),
    "Bearer " + jwt(dict(good, preferred_username="u" * 256)),
    "Bearer " + jwt(dict(good, exp=1700000001)),
    "Bearer " + jwt(good, header={"alg": "none", "typ": "JWT"}),
    "Bearer " + jwt(good, header={"alg": "HS256", "kid": "k1"}),
    "Bearer " + jwt(good, secret=b"another-secret-another-secret-another"),
    "Bearer " + jwt(good) + "\nBearer " + jwt(good),
    "Basic ZG06cGFzcw==", "Bearer", "Bearer  ", "",
])

cursor = (42).to_bytes(8, "big")
write("page_token", [
    "", "not base64!", b64(bytes([1]) + bytes(32)), b64(bytes([2]) + bytes(32)), b64(bytes(16)),
    cursor, (-1).to_bytes(8, "big", signed=True),
])

base = "/OpenClinica/pages/auth/api/clinicaldata/studies/S_JUNO%28PROD%29"
body = json.dumps({"subjectKey": "SS-0001", "firstName": "Ada", "emailAddress": "ada@example.org",
                   "phoneNumber": "+44 2071234567", "fullDob": "1815-12-10", "identifier": "X1"})
write("rest_request", [
    f"{base}/participants?register=y\nkey-1\n\"etag\"\n{body}",
    f"{base}/sites/S_OHI0%28TEST%29/participants\n\n\n{body}",
    f"{base}/participants/SS-0001\n\n\n",
    f"{base}/participant?participantID=SS-0001\n\n\n",
    f"{base}/participants?pageSize=10&pageToken=abc&status=signed\n\n\n",
    f"{base}/participants?pageSize=-1&status=other\n\n\n",
    f"{base}/participants\n\n\n{{\"subjectKey\":\"a\",\"secondaryId\":\"b\",\"identifier\":\"c\"}}",
    f"{base}/participants\n\n\n{{\"subjectKey\":\"a\",\"subjectKey\":\"b\"}}",
    f"{base}/participants\n\n\n{{\"firstName\":null,\"lastName\":\"\",\"unknown\":[1,2]}}",
    f"{base}/%FF/participants\n\n\n[]",
    f"/pages/auth/api/clinicaldata/studies//participants\n\n\n",
])

with open("../catalog/demo.toml", encoding="utf-8") as f:
    demo = f.read()
with open("../catalog/bench.toml", encoding="utf-8") as f:
    bench = f.read()
write("catalog", [
    demo, bench, "",
    '[[site]]\noid = "S1"\n',
    '[study]\noid = "S"\n',
    '[[study]]\noid = "S"\nname = "S"\nstatus = "available"\nparticipant_id_method = "system"\n'
    'participant_id_template = "{site}-{seq:99}"\nenrollment_cap = -1\n',
    '[[role]]\nuser = "u"\nstudy = "S"\nrole = "nobody"\n',
])
print("seeds written")
