"""A stand-in OpenID Connect provider on 127.0.0.1 for sign-in tests: discovery, an authorization endpoint that
signs in whoever the test names (no login form), a token endpoint issuing RS256-signed ID tokens, and the JWKS.
Streamlit's st.login (Authlib) talks to it exactly as to a real provider: it checks the signature, issuer,
audience, nonce and expiry."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeOIDC:
    def __init__(self, client_id: str = "triage-test", client_secret: str = "s3cret") -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.email = "nobody@example.com"  # who the next sign-in is
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, dict[str, str]] = {}
        self.tokens_issued = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def __enter__(self) -> FakeOIDC:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _id_token(self, nonce: str, email: str) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": "k1"}
        claims = {"iss": self.issuer, "aud": self.client_id, "sub": email, "email": email, "email_verified": True,
                  "name": email.split("@")[0], "iat": now, "exp": now + 3600, "nonce": nonce}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def _jwks(self) -> dict[str, object]:
        numbers = self._key.public_key().public_numbers()

        def big(n: int) -> str:
            return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": big(numbers.n),
                          "e": big(numbers.e)}]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        oidc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, payload: dict[str, object], status: int = 200) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json({"issuer": oidc.issuer, "authorization_endpoint": f"{oidc.issuer}/authorize",
                                "token_endpoint": f"{oidc.issuer}/token", "jwks_uri": f"{oidc.issuer}/jwks",
                                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                                "id_token_signing_alg_values_supported": ["RS256"],
                                "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                                          "client_secret_post"]})
                elif url.path == "/jwks":
                    self._json(oidc._jwks())
                elif url.path == "/authorize":
                    if query.get("client_id") != oidc.client_id:
                        self._json({"error": "unauthorized_client"}, 400)
                        return
                    code = secrets.token_urlsafe(16)
                    oidc._codes[code] = {"nonce": query.get("nonce", ""), "email": oidc.email}
                    target = query["redirect_uri"] + "?" + urllib.parse.urlencode(
                        {"code": code, "state": query.get("state", "")})
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self) -> None:
                if urllib.parse.urlparse(self.path).path != "/token":
                    self._json({"error": "not_found"}, 404)
                    return
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                basic = self.headers.get("Authorization", "")
                client = (base64.b64decode(basic.split(" ", 1)[1]).decode().split(":", 1) if basic.startswith("Basic ")
                          else [form.get("client_id", ""), form.get("client_secret", "")])
                if [urllib.parse.unquote(c) for c in client] != [oidc.client_id, oidc.client_secret]:
                    self._json({"error": "invalid_client"}, 401)
                    return
                grant = oidc._codes.pop(form.get("code", ""), None)
                if grant is None:
                    self._json({"error": "invalid_grant"}, 400)
                    return
                oidc.tokens_issued += 1
                self._json({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 3600,
                            "id_token": oidc._id_token(grant["nonce"], grant["email"])})

        return Handler
