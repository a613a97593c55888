"""The optional bearer token of the API (RFC 6750): who may read alerts and timelines.

Alerts and timelines carry card tokens, merchants and amounts, so a deployment that
exposes the web port beyond the operations network turns the token on. Probes and
scrapers (``/healthz``, ``/readyz``, ``/metrics``) and the triage page's own files (code,
no data) never need it.

The comparison is constant-time (:func:`hmac.compare_digest` of SHA-256 digests, so
neither a right prefix nor a right length makes a wrong guess answer any sooner).

>>> authorized("Bearer s3cret", "s3cret"), authorized("bearer  s3cret", "s3cret")
(True, True)
>>> authorized("Bearer s3cre", "s3cret"), authorized(None, "s3cret"), authorized(None, None)
(False, False, True)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

# RFC 6750 §3: the challenge names the realm and, for a rejected token, the error.
CHALLENGE: Final = 'Bearer realm="debitwatch"'
INVALID_TOKEN_CHALLENGE: Final = 'Bearer realm="debitwatch", error="invalid_token"'


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def authorized(authorization: str | None, token: str | None) -> bool:
    """Whether a request with this ``Authorization`` header may read data.

    ``token`` None: authentication is off and every request may.
    """
    if token is None:
        return True
    given = bearer_token(authorization)
    if given is None:
        return False
    return hmac.compare_digest(_digest(given), _digest(token))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def challenge(authorization: str | None) -> str:
    """The ``WWW-Authenticate`` value of a 401: with ``invalid_token`` when one was sent."""
    return INVALID_TOKEN_CHALLENGE if bearer_token(authorization) is not None else CHALLENGE
