#!/usr/bin/env python3
"""Re-open every golden store under tests/vectors/golden/ from SECURITY.md alone.

An implementation independent of the Rust code: OpenSSL (through `cryptography`) for
AES-256-GCM, HKDF and HMAC, and the reference C Argon2 (through `argon2-cffi`).
For `expect: ok` it unlocks the header, checks both commitments and the MAC, opens every
record, compares the plaintext with the `token.<id>` line (minus its id) and recomputes the
blind-index tags. For the negative cases it checks that the documented failure happens.

Usage (throwaway venv, as for verify_vectors.py):
    python3 -m venv /tmp/vecvenv
    /tmp/vecvenv/bin/pip install cryptography argon2-cffi
    /tmp/vecvenv/bin/python tests/vectors/verify_golden.py

Prints one line per file and finally `N passed, M failed`; exits non-zero on any failure.
"""

import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = Path(__file__).resolve().parent / "golden"
FIELDS = ["user_name", "access_token", "refresh_token", "grant_token"]


class Fail(Exception):
    pass


def parse(path):
    out, order = {}, []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        name, value = raw.split(":", 1)
        name, value = name.strip(), value.strip()
        if name in out:
            raise Fail(f"duplicate {name}")
        out[name] = value
        order.append(name)
    return out, order


def lp(*parts):
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def hkdf(salt, ikm, info):
    return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)


def mac(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


class Cursor:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, n):
        if self.at + n > len(self.data):
            raise Fail("truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]


def parse_header(h):
    c = Cursor(h)
    if c.take(8) != b"TKNVAULT":
        raise Fail("magic")
    layout = c.u8()
    if layout not in (1, 2, 3):
        raise Fail("layout version")
    store_id = c.take(16)
    if (c.u8(), c.u8()) != (1, 1):
        raise Fail("algorithms")
    commitment = c.take(32)
    slots = []
    for _ in range(c.u8()):
        slot_id, kind, length = c.u(">I"), c.u8(), c.u(">H")
        body = c.take(length)
        slots.append((slot_id, kind, body))
    keys = []
    for _ in range(c.u8()):
        keys.append((c.u(">I"), c.u(">Q"), c.take(32), c.take(60)))
    active = c.u(">I")
    summary = (c.u(">Q"), c.take(76)) if layout >= 2 else None
    audit = (c.u8(), c.u(">Q"), c.take(32)) if layout == 3 else None
    tag = c.take(32)
    if c.at != len(h):
        raise Fail("trailing bytes")
    return store_id, commitment, slots, keys, active, tag, summary, audit


def unlock(v, h):
    """Returns the store key, or raises Fail('wrong-key') / Fail('tampered-header')."""
    store_id, commitment, slots, keys, active, tag, _, _ = parse_header(h)
    store_key = None
    for slot_id, kind, body in slots:
        if kind == 2 and "raw_key" in v:
            params, wrapped = body[:16], body[16:]
            kek = hkdf(params, bytes.fromhex(v["raw_key"]), b"tokenvault raw-key slot v1")
        elif kind == 1 and "passphrase" in v:
            params, wrapped = body[:29], body[29:]
            kdf, m, t, p = struct.unpack(">BIII", params[:13])
            if kdf != 1 or not (19456 <= m <= 1048576 and 2 <= t <= 10 and 1 <= p <= 16):
                raise Fail("kdf parameters")
            kek = hash_secret_raw(v["passphrase"].encode(), params[13:29], t, m, p, 32, Type.ID)
        else:
            continue
        ad = lp(b"tokenvault slot", b"\x01", store_id, struct.pack(">I", slot_id), bytes([kind]), params)
        try:
            store_key = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], ad)
            break
        except InvalidTag:
            continue
    if store_key is None:
        raise Fail("wrong-key")
    if mac(store_key, b"tokenvault commit") != commitment:
        raise Fail("store-key commitment")
    if mac(hkdf(None, store_key, b"tokenvault header mac v1"), h[:-32]) != tag:
        raise Fail("tampered-header")
    wrap_key = hkdf(None, store_key, b"tokenvault data-key wrap v1")
    data_keys = {}
    for key_id, seals, key_commitment, wrapped in keys:
        ad = lp(b"tokenvault data key", b"\x01", store_id, struct.pack(">I", key_id))
        dk = AESGCM(wrap_key).decrypt(wrapped[:12], wrapped[12:], ad)
        if mac(dk, b"tokenvault commit") != key_commitment:
            raise Fail(f"data key {key_id} commitment")
        data_keys[key_id] = dk
    if active not in data_keys:
        raise Fail("active key")
    return store_id, store_key, data_keys


BODY = ["user_name", "client_id", "client_secret", "refresh_token", "access_token",
        "grant_token", "expiry_time", "redirect_url", "api_domain"]


def open_record(store_id, data_keys, record_id, sealed):
    """The plaintext as the token line would give it (version 1: JSON without the id;
    version 2: its fields decoded into that same JSON), or None if it does not open."""
    key_id = struct.unpack(">I", sealed[1:5])[0]
    if sealed[0] == 1:
        ad = lp(b"tokenvault record", b"\x01", store_id, sealed[1:5], record_id.encode())
        nonce, body = sealed[5:17], sealed[17:]
    elif sealed[0] == 2:
        generation = sealed[5:13]
        ad = lp(b"tokenvault record", b"\x02", store_id, sealed[1:5], generation,
                record_id.encode())
        nonce, body = sealed[13:25], sealed[25:]
    else:
        raise Fail("record version")
    try:
        plaintext = AESGCM(data_keys[key_id]).decrypt(nonce, body, ad)
    except InvalidTag:
        return None
    if sealed[0] == 1:
        return plaintext.decode("utf-8")
    fields, at = {}, 0
    for name in BODY:
        (length,) = struct.unpack(">I", plaintext[at : at + 4])
        value = plaintext[at + 4 : at + 4 + length]
        if len(value) != length:
            raise Fail(f"record {record_id}: field {name} runs past the end")
        at += 4 + length
        if length:
            fields[name] = value.decode("utf-8")
    if at != len(plaintext):
        raise Fail(f"record {record_id}: trailing bytes")
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def check_summary(v, order, h, store_key):
    """Layout 2 (SECURITY.md §3.5): the sealed count | digest | locator, recomputed."""
    store_id, *_, summary, _ = parse_header(h)
    if summary is None:
        return
    writes, sealed = summary
    root = hkdf(None, store_key, b"tokenvault record set box v1")
    box_key = hkdf(struct.pack(">Q", writes), root, b"tokenvault record set box key")
    ad = lp(b"tokenvault record set", store_id, struct.pack(">Q", writes))
    plain = AESGCM(box_key).decrypt(sealed[:12], sealed[12:], ad)
    k_f = hkdf(None, store_key, b"tokenvault record set element v1")
    k_g = hkdf(None, store_key, b"tokenvault record set locator v1")
    count = digest = locator = 0
    for name in order:
        if not name.startswith("record.") or name.endswith(".tags"):
            continue
        rid, rec = name[len("record.") :], bytes.fromhex(v[name])
        count += 1
        digest += int.from_bytes(mac(k_f, lp(rid.encode(), rec)), "big")
        g = int.from_bytes(mac(k_g, rid.encode())[:8], "big") | 1
        generation = struct.unpack(">Q", rec[5:13])[0] if rec[0] == 2 else 0
        locator += g * generation
    want = struct.pack(">Q", count) + (digest % 2**256).to_bytes(32, "big") + struct.pack(
        ">Q", locator % 2**64
    )
    if plain != want:
        raise Fail("record-set summary differs from the records")


def check_audit(v, order, h, store_key):
    """Layout 3 (SECURITY.md §3.7): every audit entry parsed and its MAC chained."""
    store_id, *_, audit = parse_header(h)
    rows = [(int(n[len("audit.") :]), bytes.fromhex(v[n])) for n in order if n.startswith("audit.")]
    if audit is None:
        if rows:
            raise Fail("audit entries without an audit head")
        return
    mode, entries, head = audit
    if mode > 2:
        raise Fail("audit mode")
    k_audit = hkdf(None, store_key, b"tokenvault audit chain v1")
    previous = bytes(32)
    for n, (seq, entry) in enumerate(rows, 1):
        c = Cursor(entry)
        if seq != n or c.u8() != 1 or c.u(">Q") != n:
            raise Fail(f"audit entry {seq}: number or version")
        c.u(">Q")  # time
        if c.u8() > 2:
            raise Fail(f"audit entry {n}: outcome")
        for width in (">B", ">H", ">B", ">B", ">H"):  # operation, record, user, host, detail
            c.take(c.u(width)).decode("utf-8")
        body, tag = entry[: c.at], c.take(32)
        if c.at != len(entry):
            raise Fail(f"audit entry {n}: trailing bytes")
        if mac(k_audit, b"tokenvault audit entry", store_id, previous, body) != tag:
            raise Fail(f"audit entry {n}: MAC")
        previous = tag
    if entries != len(rows) or head != previous:
        raise Fail("audit head differs from the log")


def check(path):
    v, order = parse(path)
    expect = v["expect"]
    h = bytes.fromhex(v["header"])
    try:
        store_id, store_key, data_keys = unlock(v, h)
    except Fail as e:
        if str(e) == expect:
            return
        raise
    if expect in ("wrong-key", "tampered-header"):
        raise Fail(f"expected {expect}, but the header unlocked")
    if expect == "ok":
        check_summary(v, order, h, store_key)
        check_audit(v, order, h, store_key)
    k_idx = hkdf(None, store_key, b"tokenvault index v1")
    tampered = set(v.get("tampered", "").split())
    for name in order:
        if not name.startswith("record.") or name.endswith(".tags"):
            continue
        rid = name[len("record.") :]
        plaintext = open_record(store_id, data_keys, rid, bytes.fromhex(v[name]))
        token = json.loads(v[f"token.{rid}"])
        if plaintext is None:
            if expect == "tampered-record" and rid in tampered:
                continue
            raise Fail(f"record {rid} does not open")
        if expect == "tampered-record" and rid in tampered:
            raise Fail(f"record {rid} opens but should not")
        expected = v[f"token.{rid}"].replace(f'"id":{json.dumps(rid)},', "", 1)
        if plaintext != expected:
            raise Fail(f"record {rid}: plaintext differs from token line")
        tags = v[f"record.{rid}.tags"].split()
        want = [
            mac(k_idx, f.encode(), b"\x00", token[f].encode("utf-8")).hex() if f in token else "-"
            for f in FIELDS
        ]
        if (tags == want) == (expect == "tampered-tags" and rid in tampered):
            raise Fail(f"record {rid}: tags {'match' if tags == want else 'differ'}")


def main():
    files = sorted(HERE.glob("*.txt"))
    passed = failed = 0
    for path in files:
        try:
            check(path)
            print(f"PASS {path.name}")
            passed += 1
        except Exception as e:  # noqa: BLE001 - report every file
            print(f"FAIL {path.name}: {e}")
            failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not files else 0)


if __name__ == "__main__":
    main()
