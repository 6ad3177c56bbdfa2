#!/usr/bin/env python3
"""Writes fixtures.json: JWE compact oneM2M JWTs made with Python's
`cryptography` package (an implementation independent of the Rust code they
test), with the JWK Set that decrypts them.

Run from this directory: `python3 generate.py` (cryptography >= 41). The
inner JWSs are signed with ../keys/es256-private.pem, whose public key the
tests trust. Every run draws new keys, IVs and CEKs; the tests only need the
file to be self-consistent.
"""
import base64
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def uint(n: int, size: int) -> str:
    return b64(n.to_bytes(size, "big"))


# The claim set of spec notes §7.1 (TS-0003 table 7.3.2.6.2-1), verbatim.
CLAIMS = {
    "tkvr": "1",
    "jti": "tk42@das.example.com",
    "iss": "//sp.example.com/id-in/Cdas",
    "azp": "//sp.example.com/id-in/Cphone",
    "nbf": 1795000000,
    "exp": 1795003600,
    "aud": ["//sp.example.com/id-in"],
    "tkps": {
        "pm": [
            {
                "ris": ["//sp.example.com/id-in/cnt7Xk2"],
                "pv": {"acr": [{"acor": ["//sp.example.com/id-in/Cphone"], "acop": 2}]},
            },
            {"rids": ["guest@roles.example.com"]},
        ]
    },
}

with open(os.path.join(HERE, "..", "keys", "es256-private.pem"), "rb") as f:
    SIGNING_KEY = serialization.load_pem_private_key(f.read(), password=None)
with open(os.path.join(HERE, "..", "keys", "es256-other-private.pem"), "rb") as f:
    OTHER_SIGNING_KEY = serialization.load_pem_private_key(f.read(), password=None)


def jws(claims, key=SIGNING_KEY, kid="das-es-1") -> str:
    """ES256 JWS compact (RFC 7515), signature as r || s (RFC 7518 3.4)."""
    signing_input = b64json({"alg": "ES256", "typ": "JWT", "kid": kid}) + "." + b64json(claims)
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def gcm(header: dict, cek: bytes, plaintext: bytes, encrypted_key: bytes) -> str:
    """The compact serialization: AAD is the encoded protected header (RFC 7516 5.1)."""
    protected = b64json(header)
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
    return ".".join([protected, b64(encrypted_key), b64(iv), b64(sealed[:-16]), b64(sealed[-16:])])


ENC_BYTES = {"A128GCM": 16, "A192GCM": 24, "A256GCM": 32}
KW_BYTES = {"A128KW": 16, "A192KW": 24, "A256KW": 32}

# Keys of the hosting CSE (asymmetric) and shared with the DAS (symmetric).
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
kw128 = os.urandom(16)
kw256 = os.urandom(32)
kw192_das = os.urandom(24)
dir128 = os.urandom(16)


def rsa_jwk(key, kid):
    n = key.private_numbers()
    pub = n.public_numbers
    size = (pub.n.bit_length() + 7) // 8
    return {
        "kty": "RSA", "kid": kid, "alg": "RSA-OAEP-256", "use": "enc",
        "n": uint(pub.n, size), "e": uint(pub.e, 3),
        "d": uint(n.d, size), "p": uint(n.p, size // 2), "q": uint(n.q, size // 2),
        "dp": uint(n.dmp1, size // 2), "dq": uint(n.dmq1, size // 2), "qi": uint(n.iqmp, size // 2),
    }


def ec_jwk(key, kid, alg):
    n = key.private_numbers()
    return {
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": alg, "use": "enc",
        "x": uint(n.public_numbers.x, 32), "y": uint(n.public_numbers.y, 32),
        "d": uint(n.private_value, 32),
    }


JWKS = {
    "keys": [
        rsa_jwk(rsa_key, "cse-rsa"),
        ec_jwk(ec_key, "cse-ec", "ECDH-ES+A128KW"),
        {"kty": "oct", "kid": "shared-kw", "alg": "A256KW", "k": b64(kw256)},
        {"kty": "oct", "kid": "shared-kw128", "alg": "A128KW", "k": b64(kw128)},
        {"kty": "oct", "kid": "shared-dir", "alg": "dir", "k": b64(dir128)},
        # Shared with one issuer, so it may carry encryption-only tokens.
        {"kty": "oct", "kid": "das-only", "alg": "A192KW", "k": b64(kw192_das),
         "iss": "//sp.example.com/id-in/Cdas"},
    ]
}


def header(alg, enc, kid, nested=True, **extra):
    h = {"alg": alg, "enc": enc, "typ": "JWT", "kid": kid}
    if nested:
        h["cty"] = "JWT"
    h.update(extra)
    return h


def rsa_oaep(plaintext, enc, kid="cse-rsa", **extra):
    cek = os.urandom(ENC_BYTES[enc])
    wrapped = rsa_key.public_key().encrypt(
        cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    return gcm(header("RSA-OAEP-256", enc, kid, **extra), cek, plaintext, wrapped)


def ecdh_es_kw(plaintext, alg, enc, kid="cse-ec", apu=b"", apv=b"", **extra):
    """ECDH-ES+AxxxKW (RFC 7518 4.6): Concat KDF (NIST SP 800-56A) over Z."""
    eph = ec.generate_private_key(ec.SECP256R1())
    z = eph.exchange(ec.ECDH(), ec_key.public_key())
    kw = alg.split("+")[1]
    bits = KW_BYTES[kw] * 8

    def lp(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    other = lp(alg.encode()) + lp(apu) + lp(apv) + bits.to_bytes(4, "big")
    kek = ConcatKDFHash(algorithm=hashes.SHA256(), length=bits // 8, otherinfo=other).derive(z)
    cek = os.urandom(ENC_BYTES[enc])
    n = eph.public_key().public_numbers()
    epk = {"kty": "EC", "crv": "P-256", "x": uint(n.x, 32), "y": uint(n.y, 32)}
    h = header(alg, enc, kid, epk=epk, **extra)
    if apu:
        h["apu"] = b64(apu)
    if apv:
        h["apv"] = b64(apv)
    return gcm(h, cek, plaintext, aes_key_wrap(kek, cek))


def aes_kw(plaintext, kek, alg, enc, kid, nested=True, **extra):
    cek = os.urandom(ENC_BYTES[enc])
    return gcm(header(alg, enc, kid, nested, **extra), cek, plaintext, aes_key_wrap(kek, cek))


def direct(plaintext, key, enc, kid="shared-dir", **extra):
    return gcm(header("dir", enc, kid, **extra), key, plaintext, b"")


def flip_first_char(part: str) -> str:
    """Another first character: still base64url, other bytes."""
    return ("A" if part[0] != "A" else "B") + part[1:]


inner = jws(CLAIMS).encode()
claims_json = json.dumps(CLAIMS, separators=(",", ":")).encode()
tokens = {
    # Nested sign-then-encrypt (TS-0003 7.3.2.6.2), every key management
    # algorithm of table 8.5.3.2-3 and content algorithm of table 8.5.3.2-4.
    "nested_rsa_oaep_256_a256gcm": rsa_oaep(inner, "A256GCM"),
    "nested_ecdh_es_a128kw_a128gcm_apu_apv": ecdh_es_kw(
        inner, "ECDH-ES+A128KW", "A128GCM", apu=b"Alice", apv=b"Bob"
    ),
    "nested_a256kw_a256gcm": aes_kw(inner, kw256, "A256KW", "A256GCM", "shared-kw"),
    "nested_a128kw_a192gcm": aes_kw(inner, kw128, "A128KW", "A192GCM", "shared-kw128"),
    "nested_dir_a128gcm": direct(inner, dir128, "A128GCM"),
    "nested_without_kid": aes_kw(inner, kw256, "A256KW", "A256GCM", "shared-kw"),
    # Encryption-only: the claims are the JWE's plaintext, no cty.
    "encryption_only_a192kw_shared_with_issuer": aes_kw(
        claims_json, kw192_das, "A192KW", "A256GCM", "das-only", nested=False
    ),
    "encryption_only_rsa_oaep_256": gcm(
        header("RSA-OAEP-256", "A128GCM", "cse-rsa", nested=False),
        *(lambda cek: (cek, claims_json, rsa_key.public_key().encrypt(
            cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))))(
            os.urandom(16))
    ),
    "encryption_only_a256kw_not_bound_to_issuer": aes_kw(
        claims_json, kw256, "A256KW", "A128GCM", "shared-kw", nested=False
    ),
    # Refusals.
    "nested_inner_signed_by_unknown_key": aes_kw(
        jws(CLAIMS, key=OTHER_SIGNING_KEY).encode(), kw256, "A256KW", "A256GCM", "shared-kw"
    ),
    "nested_unknown_kid": aes_kw(inner, kw256, "A256KW", "A256GCM", "nobody"),
    "nested_kid_of_other_algorithm": aes_kw(inner, kw256, "A128KW", "A256GCM", "shared-kw"),
    "nested_with_zip": aes_kw(inner, kw256, "A256KW", "A256GCM", "shared-kw", zip="DEF"),
    "nested_without_typ": gcm(
        {"alg": "dir", "enc": "A128GCM", "cty": "JWT", "kid": "shared-dir"}, dir128, inner, b""
    ),
    "nested_cty_not_jwt": direct(inner, dir128, "A128GCM", cty="json"),
    "nested_a128cbc_hs256": "",  # filled below: an enc outside table 8.5.3.2-4
}
# Without kid: the "kid" member removed from the header.
h = header("A256KW", "A256GCM", "x")
del h["kid"]
cek = os.urandom(32)
tokens["nested_without_kid"] = gcm(h, cek, inner, aes_key_wrap(kw256, cek))
# A128CBC-HS256 is a JWE algorithm but not one ESData supports.
parts = direct(inner, dir128, "A128GCM").split(".")
parts[0] = b64json({"alg": "dir", "enc": "A128CBC-HS256", "typ": "JWT", "cty": "JWT", "kid": "shared-dir"})
tokens["nested_a128cbc_hs256"] = ".".join(parts)
# Tampering: the first character of the ciphertext and of the tag changed,
# and a header changed after encryption (it is the AAD).
for name in ["nested_dir_a128gcm", "nested_a256kw_a256gcm"]:
    p = tokens[name].split(".")
    tokens[name + "_ciphertext_tampered"] = ".".join(p[:3] + [flip_first_char(p[3]), p[4]])
    tokens[name + "_tag_tampered"] = ".".join(p[:4] + [flip_first_char(p[4])])
p = tokens["nested_dir_a128gcm"].split(".")
hdr = json.loads(base64.urlsafe_b64decode(p[0] + "=" * (-len(p[0]) % 4)))
hdr["x-extra"] = 1
tokens["nested_dir_a128gcm_header_tampered"] = ".".join([b64json(hdr)] + p[1:])

with open(os.path.join(HERE, "fixtures.json"), "w") as f:
    json.dump({"jwks": JWKS, "claims": CLAIMS, "inner_jws": inner.decode(), "tokens": tokens}, f, indent=1)
    f.write("\n")
print("wrote", len(tokens), "tokens")
