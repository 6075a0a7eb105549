"""Editor accounts and their API tokens.

Nothing secret is stored in clear: a password is kept as its argon2id hash, an API token
as the SHA-256 digest of the token (tokens are 256-bit random strings, so a fast digest
is enough; looking one up by digest leaks nothing about the token). A token is shown
once, when it is made. Each account carries a random ``version`` that changes with its
password, so signed-in browsers of a removed account or an old password stop working.

Every key of this module shares the ``{editors}`` hash tag, so the scripts below change
an account and its tokens atomically, on a Redis Cluster too.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from livefeed import limits, models
from livefeed.errors import Conflict, InvalidInput, NotFound
from livefeed.storage.connect import Client, text
from livefeed.storage.keys import Keys

OPERATOR = "operator"  # not an account: the name the operator token signs in with
TOKEN_PREFIX = "lf_"

_NAME = re.compile(limits.EDITOR_NAME_PATTERN)
_TOKEN = re.compile(r"lf_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")
_hasher = PasswordHasher()

_ADD = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'password', ARGV[2], 'version', ARGV[3], 'created_at', ARGV[4])
return 1
"""
_REMOVE = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 6) == 'token:' then
    redis.call('HDEL', KEYS[3], cjson.decode(fields[i + 1]).digest)
  end
end
redis.call('DEL', KEYS[2])
return 1
"""
_NEW_TOKEN = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
local count = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  if string.sub(field, 1, 6) == 'token:' then count = count + 1 end
end
if count >= tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[2], 'token:' .. ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[4], cjson.encode({editor = ARGV[1], id = ARGV[2]}))
return 1
"""
_REVOKE = """
local fields = redis.call('HGETALL', KEYS[1])
local revoked = 0
for i = 1, #fields, 2 do
  local field = fields[i]
  if string.sub(field, 1, 6) == 'token:' and (ARGV[1] == '' or field == 'token:' .. ARGV[1]) then
    redis.call('HDEL', KEYS[2], cjson.decode(fields[i + 1]).digest)
    redis.call('HDEL', KEYS[1], field)
    revoked = revoked + 1
  end
end
return revoked
"""
# A new password also revokes the account's API tokens, in the same step: a password is
# changed because it may have leaked, and whoever had it could have made tokens with it.
_SET_PASSWORD = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'password', ARGV[2], 'version', ARGV[3])
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 6) == 'token:' then
    redis.call('HDEL', KEYS[3], cjson.decode(fields[i + 1]).digest)
    redis.call('HDEL', KEYS[2], fields[i])
  end
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Token:
    """What is known about an API token: its public id and when it was made."""

    id: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    created_at: str
    tokens: tuple[Token, ...]


def is_editor_name(value: object) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None and value != OPERATOR


def clean_name(value: str) -> str:
    """An account name as typed (any case, spaces around) in its stored form."""
    return value.strip().lower()


def check_new_password(name: str, password: str) -> str:
    """The password NFC-normalised, or InvalidInput saying what is wrong with it."""
    password = unicodedata.normalize("NFC", password)
    if len(password) < limits.PASSWORD_MIN:
        raise InvalidInput(f"the password needs at least {limits.PASSWORD_MIN} characters")
    if len(password) > limits.PASSWORD_MAX:
        raise InvalidInput(f"the password is longer than {limits.PASSWORD_MAX} characters")
    if password.strip().lower() == name:
        raise InvalidInput("the password must not be the account name")
    return password


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def is_operator_token(configured: str | None, given: str) -> bool:
    """True if ``given`` is the operator token; compares digests, in constant time."""
    if not configured:
        return False
    return hmac.compare_digest(token_digest(given), token_digest(configured))


@cache
def _decoy_hash() -> str:
    """A hash to verify against when the account does not exist, so that takes as long."""
    return _hasher.hash(secrets.token_urlsafe(16))


class Editors:
    """The newsroom's editor accounts, their passwords and API tokens."""

    def __init__(self, redis: Client, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        # Hashing runs in threads (it would stall the loop), a few at a time (it is meant
        # to be expensive, in CPU and memory).
        self._hashing = asyncio.Semaphore(limits.PASSWORD_HASHES_AT_ONCE)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(_hasher.hash, password)

    async def _verify(self, stored: str, password: str) -> bool:
        async with self._hashing:
            try:
                return await asyncio.to_thread(_hasher.verify, stored, password)
            except (VerificationError, InvalidHashError):
                return False

    def _account_keys(self, name: str) -> tuple[str, str, str]:
        k = self._keys
        return k.editors.names, k.editors.account(name), k.editors.tokens

    async def add(self, name: str, password: str) -> None:
        """Create an account; Conflict if the name is taken, InvalidInput if unusable."""
        if not is_editor_name(name):
            reserved = " (reserved for the operator token)" if name == OPERATOR else ""
            raise InvalidInput(
                f"an editor name is 1-32 of a-z 0-9 . _ - starting with a letter or digit"
                f"{reserved}: {name[:40]!r}"
            )
        password = check_new_password(name, password)
        hashed = await self._hash(password)
        names, account, _ = self._account_keys(name)
        added = await self._redis.eval(
            _ADD, 2, names, account, name, hashed, secrets.token_hex(8), models.now_iso()
        )
        if not added:
            raise Conflict(f"an editor named {name!r} exists already")

    async def set_password(self, name: str, password: str) -> None:
        """Change a password; the account's browsers must sign in again and its API tokens
        are revoked (whoever knew the old password could have made some)."""
        password = check_new_password(name, password)
        hashed = await self._hash(password)
        names, account, tokens = self._account_keys(name)
        changed = await self._redis.eval(
            _SET_PASSWORD, 3, names, account, tokens, name, hashed, secrets.token_hex(8)
        )
        if not changed:
            raise NotFound(f"no editor named {name!r}")
        await self._sign_out(name)

    async def remove(self, name: str) -> None:
        """Delete an account with its tokens; its browsers are signed out."""
        removed = await self._redis.eval(_REMOVE, 3, *self._account_keys(name), name)
        if not removed:
            raise NotFound(f"no editor named {name!r}")
        await self._sign_out(name)

    async def _sign_out(self, name: str) -> None:
        """End the editor's open desk streams on every process now (their sessions are
        refused from now on anyway: the account version changed)."""
        notice = {"type": "signed-out", "data": {"editor": name}}
        await self._redis.publish(self._keys.desk.notices, json.dumps(notice))

    async def exists(self, name: str) -> bool:
        return bool(await self._redis.sismember(self._keys.editors.names, name))

    async def version(self, name: str) -> str | None:
        """The account's current version (None if there is no such account)."""
        value = await self._redis.hget(self._keys.editors.account(name), "version")
        return None if value is None else text(value)

    async def accounts(self) -> list[Account]:
        names = sorted(text(n) for n in await self._redis.smembers(self._keys.editors.names))
        accounts = []
        for name in names:
            fields = {
                text(k): text(v)
                for k, v in (await self._redis.hgetall(self._keys.editors.account(name))).items()
            }
            tokens = []
            for field, value in fields.items():
                if field.startswith("token:"):
                    tokens.append(Token(field[6:], json.loads(value)["created_at"]))
            tokens.sort(key=lambda t: t.created_at)
            accounts.append(Account(name, fields.get("created_at", ""), tuple(tokens)))
        return accounts

    async def verify_password(self, name: str, password: str) -> bool:
        """True if ``password`` is ``name``'s. Takes as long for an unknown name."""
        stored = None
        if is_editor_name(name):
            value = await self._redis.hget(self._keys.editors.account(name), "password")
            stored = None if value is None else text(value)
        password = unicodedata.normalize("NFC", password)[: limits.PASSWORD_MAX]
        if stored is None:
            await self._verify(await asyncio.to_thread(_decoy_hash), password)
            return False
        if not await self._verify(stored, password):
            return False
        if _hasher.check_needs_rehash(stored):
            await self._redis.hset(
                self._keys.editors.account(name), "password", await self._hash(password)
            )
        return True

    async def new_token(self, name: str) -> tuple[str, Token]:
        """A new API token for ``name``: the token itself (shown once) and its record."""
        token_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        info = Token(token_id, models.now_iso())
        record = json.dumps({"digest": token_digest(token), "created_at": info.created_at})
        _, account, tokens = self._account_keys(name)
        made = await self._redis.eval(
            _NEW_TOKEN,
            3,
            self._keys.editors.names,
            account,
            tokens,
            name,
            token_id,
            record,
            token_digest(token),
            limits.TOKENS_PER_EDITOR,
        )
        if made == -1:
            raise NotFound(f"no editor named {name!r}")
        if made == 0:
            raise Conflict(
                f"{name!r} has {limits.TOKENS_PER_EDITOR} tokens already: revoke one first"
            )
        return token, info

    async def revoke_token(self, name: str, token_id: str | None) -> int:
        """Revoke one token of ``name`` by its id, or all of them (``None``); how many."""
        if not await self.exists(name):
            raise NotFound(f"no editor named {name!r}")
        _, account, tokens = self._account_keys(name)
        revoked = int(await self._redis.eval(_REVOKE, 2, account, tokens, token_id or ""))
        if token_id is not None and revoked == 0:
            raise NotFound(f"{name!r} has no token {token_id!r}")
        return revoked

    async def editor_of_token(self, token: str) -> str | None:
        """The editor an API token belongs to, or None for an unknown or revoked token."""
        if _TOKEN.fullmatch(token) is None:
            return None
        record = await self._redis.hget(self._keys.editors.tokens, token_digest(token))
        if record is None:
            return None
        editor: str = json.loads(record)["editor"]
        return editor
