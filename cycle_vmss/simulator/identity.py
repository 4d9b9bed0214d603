"""Who may call the simulator: a Microsoft Entra token endpoint, a GitHub OIDC token endpoint,
and the bearer check that ARM applies to every request.

Tokens are real RS256 JWTs signed with keys made at start-up (`cryptography`), so the clients'
own code paths run unchanged: MSAL reads the openid-configuration, `ClientAssertionCredential`
posts a GitHub-issued JWT, and ARM refuses a token that is missing, forged, for another audience
or expired (by the wall clock, as Azure does). Error bodies copy Entra's and ARM's shapes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import ArmError
from .randomness import Randomness

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# What ARM accepts as `aud` (the recorded 401 lists these); the simulator's own ARM endpoint is
# added at run time for a client that asks for `<arm_endpoint>/.default`.
ARM_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")
DEFAULT_GITHUB_TOKEN_LIFETIME = 300  # GitHub's OIDC tokens live minutes
GITHUB_DEFAULT_AUDIENCE = "https://github.com/octo-org"
GITHUB_SUBJECT = "repo:octo-org/octo-repo:ref:refs/heads/main"


class InvalidJwt(Exception):
    """A token that is malformed or whose signature does not verify."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def unverified_claims(token: str) -> dict:
    """The payload of a compact JWT without checking anything (to pick the right error)."""
    try:
        claims = json.loads(_b64url_decode(token.split(".")[1]))
    except (IndexError, ValueError) as exc:
        raise InvalidJwt("not a JWT") from exc
    if not isinstance(claims, dict):
        raise InvalidJwt("not a JWT")
    return claims


class JwtSigner:
    """One RS256 key: signs claims and verifies tokens it signed."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # Named after the public key itself (32 hex digits), so the name draws no randomness.
        numbers = self._key.public_key().public_numbers()
        self.kid = hashlib.sha256(f"{numbers.e}:{numbers.n}".encode()).hexdigest()[:32]

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def verify(self, token: str) -> dict:
        """The claims of a token this key signed; `InvalidJwt` otherwise (expiry not checked)."""
        try:
            header_b64, payload_b64, signature_b64 = token.split(".")
            header = json.loads(_b64url_decode(header_b64))
            signature = _b64url_decode(signature_b64)
        except ValueError as exc:
            raise InvalidJwt("not a JWT") from exc
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            raise InvalidJwt("unsupported algorithm")
        try:
            self._key.public_key().verify(
                signature, f"{header_b64}.{payload_b64}".encode("ascii"),
                padding.PKCS1v15(), hashes.SHA256(),
            )
        except InvalidSignature as exc:
            raise InvalidJwt("signature does not verify") from exc
        return unverified_claims(token)

    def jwk(self) -> dict:
        numbers = self._key.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}


@functools.cache
def process_key(role: str) -> JwtSigner:
    """One key per role for the whole process: RSA generation costs ~0.2 s, and test suites
    start dozens of simulators. (So a token stays valid on another simulator of the same process
    until it expires; the tenants are alike anyway.)"""
    return JwtSigner()


class EntraError(Exception):
    """A token-endpoint refusal in Entra's body shape (`error`, `error_description` with an
    AADSTS code, `error_codes`, ids and timestamp)."""

    def __init__(self, status: int, error: str, aadsts: int, text: str, *, error_uri_base: str,
                 now: float, trace_id: str, correlation_id: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {text}")
        stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        self.status = status
        self.body = {
            "error": error,
            "error_description": (f"AADSTS{aadsts}: {text}\r\nTrace ID: {trace_id}\r\n"
                                  f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"),
            "error_codes": [aadsts],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{error_uri_base}/error?code={aadsts}",
        }


class GitHubError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message}


def _arm_time(instant: float) -> str:
    """The US-style UTC time ARM prints in token messages ('11/30/2025 2:30:00 AM')."""
    moment = datetime.fromtimestamp(instant, timezone.utc)
    hour = moment.hour % 12 or 12
    return (f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} "
            f"{'AM' if moment.hour < 12 else 'PM'}")


@dataclass
class Identity:
    """The simulator's identity provider: one tenant, one app registration (secret or GitHub
    federation), a second app without any role (for 403s), and the GitHub OIDC issuer. The ids
    it mints (trace ids, token ids) come from `randomness`, the simulator's one source."""

    base_url: str  # https://127.0.0.1:PORT, no trailing slash
    tenant_id: str
    client_id: str
    client_secret: str
    github_oidc_token: str
    subscription_id: str
    randomness: Randomness
    token_lifetime_seconds: int = 3600
    github_token_lifetime_seconds: int = DEFAULT_GITHUB_TOKEN_LIFETIME
    forbidden_client_ids: Iterable[str] = ()
    denied_actions: Iterable[str] = ()  # actions no principal's role grants (the scenario's)
    now: Callable[[], float] = time.time
    entra_key: JwtSigner = field(default_factory=lambda: process_key("entra"))
    github_key: JwtSigner = field(default_factory=lambda: process_key("github"))

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        # A second registered app with the same secret but no role assignment: its tokens are
        # valid, and ARM answers 403 AuthorizationFailed.
        self.forbidden_client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"forbidden:{self.client_id}"))
        self._forbidden = {self.forbidden_client_id, *self.forbidden_client_ids}
        self._lock = threading.Lock()
        self._tokens_issued = 0

    # -- URLs --------------------------------------------------------------------------------
    @property
    def authority_host(self) -> str:
        return self.base_url

    @property
    def github_issuer(self) -> str:
        return f"{self.base_url}/_github/oidc"

    @property
    def github_oidc_url(self) -> str:
        return f"{self.github_issuer}/token?api-version=2.0"

    def _tenant_url(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}"

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens_issued

    # -- Entra -------------------------------------------------------------------------------
    def _known_tenant(self, tenant: str) -> None:
        if tenant.lower() != self.tenant_id.lower():
            raise self._entra_error(
                400, "invalid_tenant", 90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud. Check with your subscription "
                "administrator, this may happen if there are no active subscriptions for the tenant.",
                self.now())

    def _entra_error(self, status: int, error: str, aadsts: int, text: str, now: float) -> EntraError:
        return EntraError(status, error, aadsts, text, error_uri_base=self.base_url, now=now,
                          trace_id=self.randomness.request_guid(),
                          correlation_id=self.randomness.request_guid())

    def openid_configuration(self, tenant: str) -> dict:
        """Shaped like login.microsoftonline.com's v2.0 document, every URL pointing here."""
        self._known_tenant(tenant)
        root = self._tenant_url(self.tenant_id)
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            # MSAL checks that the issuer matches the authority it was given.
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "ver"],
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def jwks(self, tenant: str) -> dict:
        self._known_tenant(tenant)
        return {"keys": [self.entra_key.jwk()]}

    def instance_discovery(self) -> dict:
        """Served for completeness; MSAL only asks Microsoft's host, so clients still need
        `disable_instance_discovery=True`."""
        host = self.base_url.split("://", 1)[1]
        return {
            "tenant_discovery_endpoint": f"{self.base_url}/common/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    def issue_token(self, tenant: str, form: dict[str, str]) -> dict:
        """The token endpoint: client credentials with a secret or a GitHub client assertion."""
        now = self.now()

        def refuse(status: int, error: str, aadsts: int, text: str) -> EntraError:
            return self._entra_error(status, error, aadsts, text, now)

        self._known_tenant(tenant)
        grant_type = form.get("grant_type", "")
        if grant_type != "client_credentials":
            raise refuse(400, "unsupported_grant_type", 70003,
                         f"The app requested an unsupported grant type '{grant_type}'.")
        client_id = form.get("client_id", "")
        if not client_id:
            raise refuse(400, "invalid_request", 900144,
                         "The request body must contain the following parameter: 'client_id'.")
        if client_id not in (self.client_id, self.forbidden_client_id):
            raise refuse(400, "unauthorized_client", 700016,
                         f"Application with identifier '{client_id}' was not found in the directory "
                         f"'{self.tenant_id}'. This can happen if the application has not been "
                         "installed by the administrator of the tenant or consented to by any user "
                         "in the tenant. You may have sent your authentication request to the "
                         "wrong tenant.")
        resource = self._resource(form.get("scope", ""), refuse)
        if "client_secret" in form:
            if form["client_secret"] != self.client_secret:
                raise refuse(401, "invalid_client", 7000215,
                             "Invalid client secret provided. Ensure the secret being sent in the "
                             f"request is the client secret value, not the client secret ID, for a "
                             f"secret added to app '{client_id}'.")
            appidacr = "1"
        elif "client_assertion" in form:
            self._check_assertion(form, now, refuse)
            appidacr = "2"
        else:
            raise refuse(401, "invalid_client", 7000218,
                         "The request body must contain the following parameter: "
                         "'client_assertion' or 'client_secret'.")
        lifetime = int(self.token_lifetime_seconds)
        object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"principal:{client_id}"))
        token = self.entra_key.sign({
            "aud": resource, "iss": f"{self._tenant_url(self.tenant_id)}/", "iat": int(now),
            "nbf": int(now), "exp": int(now) + lifetime, "appid": client_id, "appidacr": appidacr,
            "idp": f"{self._tenant_url(self.tenant_id)}/", "idtyp": "app", "oid": object_id,
            "sub": object_id, "tid": self.tenant_id, "uti": self.randomness.request_hex(), "ver": "1.0",
        })
        with self._lock:
            self._tokens_issued += 1
        body = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": token}
        if lifetime >= 7200:  # Entra adds refresh_in (half the lifetime) to long-lived tokens
            body["refresh_in"] = lifetime // 2
        return body

    @staticmethod
    def _resource(scope_text: str, refuse) -> str:
        if not scope_text:
            raise refuse(400, "invalid_request", 900144,
                         "The request body must contain the following parameter: 'scope'.")
        scopes = [s for s in scope_text.split() if s.endswith("/.default")]
        if len(scopes) != 1:
            raise refuse(400, "invalid_scope", 1002012,
                         f"The provided value for scope {scope_text} is not valid. Client "
                         "credential flows must have a scope value with /.default suffixed to "
                         "the resource identifier (application ID URI).")
        return scopes[0][: -len("/.default")]

    def _check_assertion(self, form: dict[str, str], now: float, refuse) -> None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise refuse(400, "invalid_request", 700023,
                         f"Invalid client_assertion_type; expected '{ASSERTION_TYPE}'.")
        assertion = form["client_assertion"]
        try:
            issuer = unverified_claims(assertion).get("iss")
        except InvalidJwt:
            raise refuse(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from None
        if issuer != self.github_issuer:
            raise refuse(400, "invalid_client", 700211,
                         f"No matching federated identity record found for presented assertion "
                         f"issuer '{issuer}'. Please check your federated identity credential "
                         "Subject, Audience and Issuer against the presented assertion.")
        try:
            claims = self.github_key.verify(assertion)
        except InvalidJwt:
            raise refuse(400, "invalid_client", 5002727,
                         "Invalid JWT token: the signature does not match the issuer's keys.") from None
        audience = claims.get("aud")
        if audience != EXCHANGE_AUDIENCE:
            raise refuse(400, "invalid_client", 700212,
                         f"No matching federated identity record found for presented assertion "
                         f"audience '{audience}'. Please note that the matching is done using "
                         "a case-sensitive comparison.")
        if not claims.get("nbf", 0) <= now < claims.get("exp", 0):
            raise refuse(400, "invalid_client", 700024,
                         f"Client assertion is not within its valid time range. Current time: "
                         f"{_iso(now)}, assertion valid from {_iso(claims.get('nbf', 0))}, expiry "
                         f"time of assertion {_iso(claims.get('exp', 0))}.")

    # -- GitHub OIDC -------------------------------------------------------------------------
    def issue_github_token(self, authorization: str | None, audience: str | None) -> dict:
        """Like ACTIONS_ID_TOKEN_REQUEST_URL: the job's request token as bearer, `audience`."""
        if authorization != f"Bearer {self.github_oidc_token}":
            raise GitHubError(401, "Unauthorized: the request token is missing or not valid for this job.")
        now = int(self.now())
        return {"value": self.github_key.sign({
            "jti": self.randomness.request_guid(), "sub": GITHUB_SUBJECT, "aud": audience or GITHUB_DEFAULT_AUDIENCE,
            "ref": "refs/heads/main", "repository": "octo-org/octo-repo",
            "repository_owner": "octo-org", "event_name": "workflow_dispatch",
            "job_workflow_ref": "octo-org/octo-repo/.github/workflows/cycle.yml@refs/heads/main",
            "iss": self.github_issuer, "nbf": now, "iat": now,
            "exp": now + int(self.github_token_lifetime_seconds),
        })}

    # -- ARM ---------------------------------------------------------------------------------
    def _unauthorized(self, code: str, message: str, description: str) -> ArmError:
        challenge = (f'Bearer authorization_uri="{self._tenant_url(self.tenant_id)}", '
                     f'error="invalid_token", error_description="{description}"')
        return ArmError(message, code=code, status=401, headers={"WWW-Authenticate": challenge})

    def authenticate_arm(self, authorization: str | None) -> dict:
        """The claims of a valid ARM bearer token; an ArmError 401 otherwise."""
        if not authorization:
            raise self._unauthorized(
                "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                "The authentication failed because of missing 'Authorization' header.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.")
        try:
            claims = self.entra_key.verify(token.strip())
        except InvalidJwt:
            raise self._unauthorized("InvalidAuthenticationToken", "The access token is invalid.",
                                     "The access token is invalid.") from None
        audience = str(claims.get("aud", ""))
        allowed = {*ARM_AUDIENCES, self.base_url}
        if audience.rstrip("/") not in allowed:
            raise self._unauthorized(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{audience}'. "
                "It should exactly match with one of the allowed audiences "
                "'https://management.core.windows.net/','https://management.core.windows.net',"
                "'https://management.azure.com/','https://management.azure.com'.",
                "The access token has been obtained for wrong audience or resource.")
        now = self.now()
        if now >= claims.get("exp", 0):
            raise self._unauthorized(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{_arm_time(claims.get('exp', 0))}' is earlier "
                f"than current UTC time '{_arm_time(now)}'.",
                "The access token has expired.")
        return claims

    def authorize_arm(self, claims: dict, action: str, scope: str) -> None:
        """403 AuthorizationFailed for a principal without a role on the subscription, or for
        an action its role lacks (`denied_actions`)."""
        if claims.get("appid") in self._forbidden or action in self.denied_actions:
            raise authorization_failed(str(claims.get("oid")), action, scope)


def authorization_failed(object_id: str, action: str, scope: str) -> ArmError:
    """ARM's answer to a principal whose roles do not grant `action` over `scope`."""
    return ArmError(
        f"The client '{object_id}' with object id '{object_id}' does not have "
        f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials.",
        code="AuthorizationFailed", status=403)


def _iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, timezone.utc).strftime("%m/%d/%Y %H:%M:%S")
