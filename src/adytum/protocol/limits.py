"""The length limits of every string a stranger can send, written once, from the spec's types.

A request is bounded as a whole by the listener's body limit and by `MAX_ITEMS` per order; these bound
each field so that nothing schema-valid is larger than what its type can need.
"""

from __future__ import annotations

#: Hex ids (work-order, worker, workload, requester ids, nonces, hashes): 1024 bits and then some.
MAX_HEX_ID = 256
#: A PEM public key (RSA up to 8192 bits, secp256k1) or an RSA-wrapped key in hex.
MAX_KEY = 4 * 1024
#: resultUri and notifyUri.
MAX_URI = 2 * 1024
#: A base64 DER signature (secp256k1: about 96 characters; room for RSA-3072).
MAX_SIGNATURE = 512
#: Short names: payloadFormat, dataEncryptionAlgorithm, signatureRules.
MAX_NAME = 64
#: An IV or a data hash (hex or base64).
MAX_IV = 256
#: Free text the spec leaves open (receipt updateData, a registry's extra fields).
MAX_TEXT = 64 * 1024
#: One item's base64 data: the default body limit (the body limit bounds it again, whatever it is set to).
#: 16 MiB carries a photograph of about 12 MB (the `redact-image` workload).
MAX_DATA = 16 * 1024 * 1024
#: The largest plaintext one outData item can carry: its AES-GCM ciphertext (16-byte tag) in base64 fits MAX_DATA.
MAX_DATA_BYTES = MAX_DATA // 4 * 3 - 16
#: All outData items of one result together, in plaintext: the enclave's answer frame (64 MiB) holds it twice over.
MAX_RESULT_BYTES = 2 * MAX_DATA_BYTES
#: inData and outData items per work order.
MAX_ITEMS = 256
#: Requests in one JSON-RPC batch (the body limit bounds the batch's bytes, as it bounds a single request).
MAX_BATCH = 100
