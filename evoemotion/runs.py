"""Run folders: layout, config, metrics, signed checkpoints, data snapshots, one writer.

Rendering the elites into ``elites/`` belongs to the views (:mod:`evoemotion.views.export`);
this module only persists.

A run folder (``runs/NAME/``) holds:

- ``config.json``: the resolved configuration (run options, genotype preset, archive
  spec, classifier sources and identity hashes, package versions);
- ``centroids.npy``: the CVT centroids of a ``categorical`` archive (computed once);
- ``metrics.csv``: one row per iteration (see :data:`~evoemotion.search.METRIC_FIELDS`);
- ``checkpoint.pkl``: the pickled run state plus the global random states, behind a
  header with its sha256 (corruption check) and its HMAC-SHA256 signature under the
  user's key (:mod:`evoemotion.signing`), written atomically (temp file, fsync, rename);
- ``archive.npz``: the archive's elites as plain data (:mod:`evoemotion.snapshot`),
  written atomically beside each checkpoint; the views read only this;
- ``writer.lock``: the lock that ``run`` and ``resume`` hold while they write, with the
  holder's process id;
- ``elites/`` and ``elites.csv``: every elite as PNG and genome JSON, and one CSV row per
  elite (cell, objective, measures, outputs, files).

:class:`RunFolder` never looks inside the run state beyond the
:class:`~evoemotion.search.SearchState` protocol. Classifier weights are never pickled;
the config records where they came from and their hash. A pickle is code: a checkpoint
is loaded only when it carries this user's signature, or when the caller trusts it.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import pickle
import random
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evoemotion.atomic import atomic_write, reporting_write_errors
from evoemotion.errors import (
    CheckpointError,
    ConfigError,
    RunBusyError,
    UntrustedCheckpointError,
)
from evoemotion.signing import SigningKey, load_key, signer_name
from evoemotion.snapshot import SNAPSHOT_NAME, ArchiveSnapshot

if TYPE_CHECKING:
    from evoemotion.pipeline import EvaluatorLike
    from evoemotion.search import SearchState

#: ``format`` field of a run's ``config.json``.
RUN_FORMAT = "evoemotion-run"

#: First bytes of a checkpoint file; the format version and the header fields follow.
CHECKPOINT_MAGIC = b"EVOEMOTION-RUN-CHECKPOINT "

#: Version of the signed checkpoint header: ``sha256=HEX key=FINGERPRINT by=USER@HOST
#: hmac=HEX``; the HMAC covers the header fields before it, a newline and the pickle.
#: Version 1 (``sha256`` only, unsigned) is still read.
CHECKPOINT_VERSION = b"2"

#: Name of the writer lock file in a run folder.
LOCK_NAME = "writer.lock"


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    """Return a CSV table (header + rows, ``\\n`` line ends) as bytes.

    Args:
        header: Column names.
        rows: The rows.

    Returns:
        The UTF-8 bytes.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _header_fields(header: bytes) -> dict[str, str]:
    return dict(
        part.split("=", 1) for part in header.decode("ascii", "replace").split() if "=" in part
    )


class RunFolder:
    """One run's folder on disk. Use :meth:`create` for a new run, :meth:`open` to resume.

    Writers (:meth:`create`, :meth:`lock`) hold the folder's exclusive lock until
    :meth:`release` or the end of the process; readers need none.

    Args:
        path: The folder.
        key: The key that signs and checks checkpoints; default :func:`load_key`'s,
            loaded on first use.
    """

    def __init__(self, path: str | os.PathLike, *, key: SigningKey | None = None) -> None:
        self.path = Path(path)
        self._key = key
        self._lock_fd: int | None = None
        #: Iteration of the last checkpoint written or loaded here (``None``: none yet).
        self.checkpoint_iteration: int | None = None

    @property
    def key(self) -> SigningKey:
        """The signing key (loaded on first use).

        Raises:
            ConfigError: The key file is unusable.
        """
        if self._key is None:
            self._key = load_key()
        return self._key

    @property
    def config_path(self) -> Path:
        """``config.json``."""
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        """``metrics.csv``."""
        return self.path / "metrics.csv"

    @property
    def checkpoint_path(self) -> Path:
        """``checkpoint.pkl``."""
        return self.path / "checkpoint.pkl"

    @property
    def centroids_path(self) -> Path:
        """``centroids.npy`` (categorical archives only)."""
        return self.path / "centroids.npy"

    @property
    def snapshot_path(self) -> Path:
        """``archive.npz``: the archive as plain data."""
        return self.path / SNAPSHOT_NAME

    @property
    def lock_path(self) -> Path:
        """``writer.lock``."""
        return self.path / LOCK_NAME

    @property
    def elites_dir(self) -> Path:
        """``elites/``: PNG + genome JSON per elite."""
        return self.path / "elites"

    @property
    def elites_csv(self) -> Path:
        """``elites.csv``."""
        return self.path / "elites.csv"

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        config: dict[str, Any],
        centroids: np.ndarray | None = None,
        *,
        key: SigningKey | None = None,
    ) -> RunFolder:
        """Make a new run folder, lock it and write its config (and centroids).

        Args:
            path: The folder; it must not exist or be empty.
            config: JSON-able configuration; ``format`` is added.
            centroids: CVT centroids to save as ``centroids.npy``.
            key: The checkpoint signing key (default: the user's).

        Returns:
            The run folder, locked for writing.

        Raises:
            ConfigError: The folder exists and is not empty.
            RunBusyError: Another process is creating the same folder.
        """
        folder = cls(path, key=key)

        def occupied() -> bool:
            return folder.path.exists() and any(p.name != LOCK_NAME for p in folder.path.iterdir())

        if occupied():
            raise ConfigError(
                f"run folder {folder.path} already exists and is not empty; resume it with "
                "`evoemotion resume` or choose another --out"
            )
        with reporting_write_errors(folder.path):
            folder.path.mkdir(parents=True, exist_ok=True)
        folder.lock()
        if occupied():
            folder.release()
            raise ConfigError(f"run folder {folder.path} was filled by another process")
        document = {"format": RUN_FORMAT, **config}
        atomic_write(folder.config_path, json.dumps(document, indent=2).encode() + b"\n")
        if centroids is not None:
            buffer = io.BytesIO()
            np.save(buffer, centroids)
            atomic_write(folder.centroids_path, buffer.getvalue())
        return folder

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, key: SigningKey | None = None, checkpoint: bool = True
    ) -> RunFolder:
        """Open an existing run folder, checking that it is one (no lock is taken).

        Args:
            path: The folder.
            key: The checkpoint key (default: the user's).
            checkpoint: Whether the folder must hold a checkpoint (readers of the
                snapshot pass ``False``).

        Returns:
            The run folder.

        Raises:
            CheckpointError: The folder is missing, is not a run folder, or has no
                checkpoint yet.
        """
        folder = cls(path, key=key)
        if not folder.path.is_dir():
            raise CheckpointError(f"{folder.path} is not a folder")
        if not folder.config_path.is_file():
            raise CheckpointError(f"{folder.path} is not a run folder (no config.json)")
        config = folder.config
        if config.get("format") != RUN_FORMAT:
            raise CheckpointError(f"{folder.config_path} is not an evoemotion run config")
        if checkpoint and not folder.checkpoint_path.is_file():
            raise CheckpointError(f"{folder.path} has no checkpoint.pkl to resume from")
        return folder

    def lock(self) -> RunFolder:
        """Take the folder's exclusive writer lock (an OS lock: it dies with the process).

        The lock file records the holder's process id; nothing else is written.

        Returns:
            This folder.

        Raises:
            RunBusyError: Another process holds the lock; the message names it.
            WriteError: The lock file cannot be made (read-only folder ...).
        """
        if self._lock_fd is not None:
            return self
        with reporting_write_errors(self.lock_path):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunBusyError(
                f"run folder {self.path} is being written by process {holder} (an evoemotion "
                "run or resume); nothing was changed: wait for it to finish or stop it, "
                "then resume"
            ) from None
        self._lock_fd = fd
        with reporting_write_errors(self.lock_path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def release(self) -> None:
        """Give up the writer lock (if held)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def config(self) -> dict[str, Any]:
        """The parsed ``config.json``.

        Raises:
            CheckpointError: The file is not valid JSON.
        """
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{self.config_path} is unreadable ({err})") from err

    def centroids(self) -> np.ndarray | None:
        """Return the saved CVT centroids, or ``None`` if the run has none."""
        if not self.centroids_path.is_file():
            return None
        return np.load(self.centroids_path)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one iteration's metrics to ``metrics.csv`` (header on first use).

        Args:
            row: Field -> value.
        """
        new = not self.metrics_path.is_file() or self.metrics_path.stat().st_size == 0
        with (
            reporting_write_errors(self.metrics_path),
            open(self.metrics_path, "a", newline="") as fh,
        ):
            writer = csv.writer(fh, lineterminator="\n")
            if new:
                writer.writerow(list(row))
            writer.writerow(list(row.values()))

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.csv`` atomically from ``rows`` (used on resume).

        Args:
            rows: All metrics rows so far; may be empty.
        """
        header = list(rows[0]) if rows else []
        data = csv_bytes(header, [list(r.values()) for r in rows]) if rows else b""
        atomic_write(self.metrics_path, data)

    def save_checkpoint(self, state: SearchState) -> None:
        """Pickle and sign the run state and the global random states atomically, and
        write the archive's data snapshot beside it.

        Args:
            state: The run state.
        """
        import torch

        payload = {
            "state": state,
            "python_random": random.getstate(),
            "numpy_random": np.random.get_state(),
            "torch_random": torch.get_rng_state(),
        }
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        fields = (
            f"sha256={hashlib.sha256(data).hexdigest()} key={self.key.fingerprint} "
            f"by={signer_name()}"
        ).encode()
        signature = self.key.sign(fields + b"\n" + data).encode()
        header = CHECKPOINT_MAGIC + CHECKPOINT_VERSION + b" " + fields + b" hmac=" + signature
        atomic_write(self.checkpoint_path, header + b"\n" + data)
        self.checkpoint_iteration = int(state.iteration)
        atomic_write(self.snapshot_path, ArchiveSnapshot.of(state).to_bytes())

    def _check_signature(self, header: bytes, data: bytes, trust: bool) -> None:
        where = self.checkpoint_path
        version, _, rest = header[len(CHECKPOINT_MAGIC) :].partition(b" ")
        if version == b"1":
            fields = {"sha256": rest.decode("ascii", "replace")}
        elif version == CHECKPOINT_VERSION:
            fields = _header_fields(rest)
        else:
            raise CheckpointError(
                f"{where} is checkpoint version {version.decode('ascii', 'replace')}, which "
                "this evoemotion does not read"
            )
        if fields.get("sha256") != hashlib.sha256(data).hexdigest():
            raise CheckpointError(f"{where} is truncated or corrupt (checksum mismatch)")
        if trust:
            return
        signed = rest.rpartition(b" hmac=")[0]
        if version == CHECKPOINT_VERSION and self.key.verify(
            signed + b"\n" + data, fields.get("hmac", "")
        ):
            return
        whose = (
            "is not signed (written before evoemotion signed checkpoints, or by hand)"
            if version == b"1"
            else f"is signed by key {fields.get('key', '?')} of {fields.get('by', '?')}, not "
            f"by your key {self.key.fingerprint} ({self.key.path})"
        )
        raise UntrustedCheckpointError(
            f"{where} {whose}; a checkpoint is a pickle and loading it runs any code it "
            "holds, so it is loaded only with --trust: use that only if you trust whoever "
            f"wrote {self.path}"
        )

    def load_checkpoint(self, *, trust: bool = False) -> SearchState:
        """Load the run state and restore the global random states.

        The checkpoint must carry this user's signature unless ``trust`` is set.

        Args:
            trust: Load a checkpoint that is unsigned or signed with another key (it is a
                pickle: it can run any code).

        Returns:
            The run state.

        Raises:
            CheckpointError: The file is missing, not a checkpoint, truncated or corrupt.
            UntrustedCheckpointError: The signature is missing or not this user's.
        """
        import torch

        where = self.checkpoint_path
        try:
            raw = where.read_bytes()
        except OSError as err:
            raise CheckpointError(f"{where} cannot be read ({err.strerror})") from err
        header, _, data = raw.partition(b"\n")
        if not header.startswith(CHECKPOINT_MAGIC):
            raise CheckpointError(f"{where} is not an evoemotion run checkpoint")
        self._check_signature(header, data, trust)
        try:
            payload = pickle.loads(data)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
            reason = (str(err).splitlines() or [""])[0][:200]
            raise CheckpointError(
                f"{where} cannot be unpickled ({type(err).__name__}: {reason})"
            ) from err
        random.setstate(payload["python_random"])
        np.random.set_state(payload["numpy_random"])
        torch.set_rng_state(payload["torch_random"])
        self.checkpoint_iteration = int(payload["state"].iteration)
        return payload["state"]

    def snapshot(self) -> ArchiveSnapshot:
        """Read the archive's data snapshot (no pickle is opened).

        Returns:
            The snapshot of the latest checkpoint.

        Raises:
            CheckpointError: The folder has no snapshot (made before snapshots existed).
            DataError: The snapshot is unreadable.
        """
        if not self.snapshot_path.is_file():
            raise CheckpointError(
                f"{self.path} has no {SNAPSHOT_NAME} (written before evoemotion saved archive "
                f"snapshots); if you trust the folder, make one with: evoemotion snapshot "
                f"{self.path} --trust"
            )
        return ArchiveSnapshot.read(self.snapshot_path)


def run_iterations(
    folder: RunFolder,
    state: SearchState,
    evaluator: EvaluatorLike,
    *,
    iterations: int,
    checkpoint_every: int = 10,
    stop: threading.Event | None = None,
    callback: Callable[[dict[str, float]], None] | None = None,
) -> bool:
    """Step a run until it has done ``iterations`` iterations or ``stop`` is set.

    Metrics go to ``metrics.csv`` after every iteration; the checkpoint is written every
    ``checkpoint_every`` iterations and when the loop ends or is stopped. An exception
    inside an iteration (e.g. a second Ctrl-C) propagates without a checkpoint, since the
    state may be half-way through a step; the last checkpoint stays valid.

    Args:
        folder: The run folder.
        state: The run state.
        evaluator: Renders and scores genomes.
        iterations: Total iterations the run should reach (not additional ones).
        checkpoint_every: Checkpoint period in iterations (0: only at the end).
        stop: When set (e.g. by a signal), the run stops after the current iteration.
        callback: Called with each iteration's metrics row (progress display).

    Returns:
        ``True`` if the run reached ``iterations``, ``False`` if it was stopped.

    Raises:
        ConfigError: ``checkpoint_every`` is negative.
    """
    if checkpoint_every < 0:
        raise ConfigError(f"`checkpoint_every` must be >= 0, got {checkpoint_every}")
    while state.iteration < iterations and not (stop and stop.is_set()):
        row = state.step(evaluator)
        folder.append_metrics(row)
        if callback:
            callback(row)
        if checkpoint_every and state.iteration % checkpoint_every == 0:
            folder.save_checkpoint(state)
    folder.save_checkpoint(state)
    return state.iteration >= iterations


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Turn the first SIGINT / SIGTERM into a stop request instead of an exception.

    Inside the block, the first signal sets the yielded event (the run loop finishes its
    iteration, checkpoints and returns); a second SIGINT interrupts at once. The previous
    handlers are restored on exit. Only usable from the main thread.

    Yields:
        The event that the signals set.
    """
    event = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, frame: Any) -> None:
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
