#!/usr/bin/python3
"""Prints the second signing vector of tests/unit/test_sign.c with Python's
hmac module, independently of OpenSSL: key = bytes 0..31, a body with an
escaped non-ASCII character and a trailing newline."""
import base64
import hashlib
import hmac

key = bytes(range(32))
body = b'{"type":"test","x":"\\u00e9"}\n'
msg = b"msg_2.1700000000." + body
print("whsec_" + base64.b64encode(key).decode())
print("v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode())
