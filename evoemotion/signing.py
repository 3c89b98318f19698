"""Checkpoint signatures: HMAC-SHA256 under a per-user secret key.

A run checkpoint is a pickle, and unpickling runs code, so ``resume`` loads only
checkpoints signed with the user's own key (or with ``--trust``). The key is 32 random
bytes, stored as hex in a file readable by its owner only:

- ``--key-file FILE`` on the command line, else
- ``$EVOEMOTION_KEY_FILE`` (e.g. one key shared by a cluster's driver and workers), else
- ``$XDG_CONFIG_HOME/evoemotion/checkpoint.key`` (``~/.config/...`` without
  ``XDG_CONFIG_HOME``), created with mode 0600 on first use.

Only the default file is created when missing; a named file must exist.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from evoemotion.errors import ConfigError

#: Environment variable naming the key file.
KEY_FILE_ENV = "EVOEMOTION_KEY_FILE"


def default_key_path() -> Path:
    """Return the per-user key file: ``$XDG_CONFIG_HOME/evoemotion/checkpoint.key``."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "evoemotion" / "checkpoint.key"


@dataclass(frozen=True)
class SigningKey:
    """A secret key and where it came from.

    Attributes:
        secret: The key bytes.
        path: The key file.
    """

    secret: bytes
    path: Path

    @property
    def fingerprint(self) -> str:
        """Sixteen hex digits that identify the key without revealing it."""
        return hashlib.sha256(b"evoemotion-key-fingerprint" + self.secret).hexdigest()[:16]

    def sign(self, data: bytes) -> str:
        """Return the HMAC-SHA256 of ``data`` as hex.

        Args:
            data: The bytes to sign.

        Returns:
            64 hex digits.
        """
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()

    def verify(self, data: bytes, signature: str) -> bool:
        """Check a signature made by :meth:`sign` (constant time).

        Args:
            data: The signed bytes.
            signature: The hex signature.

        Returns:
            Whether the signature is this key's.
        """
        return hmac.compare_digest(self.sign(data), signature)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # made by a concurrent first use
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")


def load_key(path: str | os.PathLike | None = None) -> SigningKey:
    """Load the signing key, creating the default one on first use.

    Args:
        path: The key file; default ``$EVOEMOTION_KEY_FILE`` or :func:`default_key_path`.

    Returns:
        The key.

    Raises:
        ConfigError: A named key file is missing, a key file is readable or writable by
            other users, or does not hold at least 32 hex-encoded bytes.
    """
    named = path or os.environ.get(KEY_FILE_ENV)
    where = Path(named).expanduser() if named else default_key_path()
    if not named:
        _create(where)
    try:
        mode = where.stat().st_mode
        text = where.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"checkpoint key file {where} cannot be read ({reason})") from err
    if mode & 0o077:
        raise ConfigError(
            f"checkpoint key file {where} is open to other users (mode {mode & 0o777:o}); "
            f"make it private with: chmod 600 {where}"
        )
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 32:
        raise ConfigError(
            f"checkpoint key file {where} must hold at least 32 bytes as hex "
            "(make one with: python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return SigningKey(secret, where)


def signer_name() -> str:
    """Return ``user@host`` of this process, recorded with each signature."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    name = f"{user}@{socket.gethostname()}"
    return "".join(c if c.isprintable() and not c.isspace() else "_" for c in name)
