#!/usr/bin/env python3
"""Re-check every known-answer vector under tests/vectors/.

AES-256-GCM cases are recomputed with `cryptography` (OpenSSL's AESGCM);
Argon2id cases with `argon2-cffi` (bindings to the reference C implementation),
through the low-level `argon2_ctx` so that secret and associated data are honoured.

Usage (throwaway venv):
    python3 -m venv /tmp/vecvenv
    /tmp/vecvenv/bin/pip install cryptography argon2-cffi
    /tmp/vecvenv/bin/python tests/vectors/verify_vectors.py

Prints one line per file and finally `N passed, M failed`; exits non-zero on any failure.
"""

import re
import sys
from pathlib import Path

from argon2.low_level import ARGON2_VERSION, Type, core, ffi, hash_secret_raw, lib
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = Path(__file__).resolve().parent
HEX = re.compile(r"^(?:[0-9a-f]{2})*$")  # lowercase, even length, may be empty

GCM_FIELDS = ["expect", "key", "nonce", "aad", "plaintext", "ciphertext", "tag"]
ARGON_FIELDS = ["expect", "version", "m_kib", "t", "p", "password", "salt", "secret", "ad", "tag"]


class VectorError(Exception):
    pass


def parse(path, fields):
    """Parse `name: value` lines; `#` lines are comments. Every field exactly once."""
    out = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if ":" not in line:
            raise VectorError(f"line {lineno}: no ':' in {raw!r}")
        name, value = line.split(":", 1)
        name, value = name.strip(), value.strip()
        if name not in fields:
            raise VectorError(f"line {lineno}: unknown field {name!r}")
        if name in out:
            raise VectorError(f"line {lineno}: duplicate field {name!r}")
        out[name] = value
    missing = [f for f in fields if f not in out]
    if missing:
        raise VectorError(f"missing fields {missing}")
    if out["expect"] not in ("ok", "fail"):
        raise VectorError(f"expect must be ok or fail, got {out['expect']!r}")
    return out


def hexfield(v, name, length=None):
    if not HEX.match(v[name]):
        raise VectorError(f"{name} is not lowercase hex: {v[name]!r}")
    b = bytes.fromhex(v[name])
    if length is not None and len(b) != length:
        raise VectorError(f"{name} must be {length} bytes, got {len(b)}")
    return b


def check_gcm(path):
    v = parse(path, GCM_FIELDS)
    key = hexfield(v, "key", 32)
    nonce = hexfield(v, "nonce", 12)
    aad = hexfield(v, "aad")
    pt = hexfield(v, "plaintext")
    ct = hexfield(v, "ciphertext")
    tag = hexfield(v, "tag", 16)
    if len(ct) != len(pt):
        raise VectorError("ciphertext and plaintext lengths differ")
    gcm = AESGCM(key)
    sealed = gcm.encrypt(nonce, pt, aad or None)
    if v["expect"] == "ok":
        if sealed[:-16] != ct:
            raise VectorError(f"ciphertext mismatch: computed {sealed[:-16].hex()}")
        if sealed[-16:] != tag:
            raise VectorError(f"tag mismatch: computed {sealed[-16:].hex()}")
        opened = gcm.decrypt(nonce, ct + tag, aad or None)
        if opened != pt:
            raise VectorError("decrypt(ciphertext||tag) did not return plaintext")
        return "ok: encrypt matches ciphertext||tag, decrypt round-trips"
    # expect: fail -- the (ciphertext, tag) pair must be rejected.
    try:
        gcm.decrypt(nonce, ct + tag, aad or None)
    except InvalidTag:
        pass
    else:
        raise VectorError("decryption unexpectedly succeeded")
    # Sanity: the file's ciphertext is the genuine encryption of `plaintext`, and only
    # the tag differs, so the case isolates tag verification.
    if sealed[:-16] != ct:
        raise VectorError("fail case: ciphertext is not encrypt(plaintext); case is not a pure tag mutation")
    if sealed[-16:] == tag:
        raise VectorError("fail case: tag equals the genuine tag")
    return "fail: rejected (InvalidTag); ciphertext genuine, tag mutated"


def argon2id(password, salt, secret, ad, t, m_kib, p, version, outlen):
    """Argon2id via argon2_ctx (reference C), supporting secret key and associated data."""
    out = ffi.new("uint8_t[]", outlen)
    pwd = ffi.new("uint8_t[]", password)
    slt = ffi.new("uint8_t[]", salt)
    sec = ffi.new("uint8_t[]", secret) if secret else ffi.NULL
    adb = ffi.new("uint8_t[]", ad) if ad else ffi.NULL
    ctx = ffi.new(
        "argon2_context *",
        dict(
            version=version,
            out=out, outlen=outlen,
            pwd=pwd, pwdlen=len(password),
            salt=slt, saltlen=len(salt),
            secret=sec, secretlen=len(secret),
            ad=adb, adlen=len(ad),
            t_cost=t, m_cost=m_kib, lanes=p, threads=p,
            allocate_cbk=ffi.NULL, free_cbk=ffi.NULL,
            flags=lib.ARGON2_DEFAULT_FLAGS,
        ),
    )
    rc = core(ctx, Type.ID.value)
    if rc != lib.ARGON2_OK:
        raise VectorError(f"argon2_ctx returned {rc}: {ffi.string(lib.argon2_error_message(rc)).decode()}")
    return bytes(ffi.buffer(out, outlen))


def check_argon2id(path):
    v = parse(path, ARGON_FIELDS)
    if v["expect"] != "ok":
        raise VectorError("only expect: ok is defined for argon2id vectors")
    try:
        version, m_kib, t, p = (int(v[k]) for k in ("version", "m_kib", "t", "p"))
    except ValueError as e:
        raise VectorError(f"bad integer parameter: {e}")
    if version != ARGON2_VERSION:
        raise VectorError(f"version must be {ARGON2_VERSION} (0x13), got {version}")
    password, salt = hexfield(v, "password"), hexfield(v, "salt")
    secret, ad, tag = hexfield(v, "secret"), hexfield(v, "ad"), hexfield(v, "tag")
    got = argon2id(password, salt, secret, ad, t, m_kib, p, version, len(tag))
    if got != tag:
        raise VectorError(f"tag mismatch: computed {got.hex()}")
    how = "argon2_ctx"
    if not secret and not ad:
        # Second path through the high-level API for the no-secret/no-ad cases.
        raw = hash_secret_raw(password, salt, time_cost=t, memory_cost=m_kib, parallelism=p,
                              hash_len=len(tag), type=Type.ID, version=version)
        if raw != tag:
            raise VectorError(f"hash_secret_raw mismatch: computed {raw.hex()}")
        how += " + hash_secret_raw"
    return f"ok: tag matches ({how})"


def main():
    suites = [("aes256gcm", check_gcm), ("argon2id", check_argon2id)]
    passed = failed = 0
    for sub, check in suites:
        files = sorted((HERE / sub).glob("*.txt"))
        if not files:
            print(f"FAIL {sub}/: no vector files found")
            failed += 1
        for f in files:
            rel = f.relative_to(HERE)
            try:
                msg = check(f)
            except Exception as e:  # report every file, keep going
                print(f"FAIL {rel}: {e}")
                failed += 1
            else:
                print(f"PASS {rel}: {msg}")
                passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
