"""The recovery directory of `sloguard run`: private, and refused when it belongs to another flow.

Bytewax unpickles the snapshots it finds there on resume, so the directory is created 0700 and
one that other users can write to is refused. Bytewax also resumes each input partition it finds
state for, and stops with "Key ... is not in this worker's routing map" when the config reads
other topics; so the directory records what it was made for (`sloguard-recovery.json`: the input
partitions, sloguard's version, the state schema) and a run whose inputs do not cover those is
refused with a message saying what changed and what to do. The state of each model carries its
own fingerprint (sloguard/core/evaluate/state.py): a changed SLO list is migrated or refused per model.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson

from sloguard import __version__
from sloguard.core.evaluate.state import STATE_SCHEMA
from sloguard.core.spec.model import ConfigError

IDENTITY = "sloguard-recovery.json"


def prepare(directory: Path, partitions: int, inputs: list[str], flow_id: str = "sloguard") -> None:
    """Create (0700) and initialise `directory`, or check an existing one is this flow's.

    Raises `ConfigError` naming the directory and what is wrong; records new input partitions
    (a topic given more partitions) so a later run checks against them too.
    """
    from bytewax.recovery import init_db_dir

    source = f"--recovery-dir {directory}"
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
    os_mode = stat.S_IMODE(directory.stat().st_mode)
    if os_mode & 0o022:
        raise ConfigError([f"{directory} can be written by other users (mode {os_mode:o}): Bytewax unpickles "
                           f"the snapshots it finds there on resume; run `chmod 700 {directory}`"], source)
    identity_path = directory / IDENTITY
    if not any(directory.iterdir()):
        os.chmod(directory, 0o700)  # umask may have widened a directory made by mkdir above
        init_db_dir(directory, partitions)
        _write(identity_path, {"flow": flow_id, "inputs": sorted(inputs), "sloguard": __version__,
                               "state_schema": STATE_SCHEMA})
        return
    if not identity_path.exists():
        raise ConfigError([f"{directory} is not a recovery directory of this sloguard (no {IDENTITY}): another "
                           "flow's, or an older sloguard's; start with a new --recovery-dir"], source)
    try:
        identity = orjson.loads(identity_path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ConfigError([f"{identity_path}: unreadable ({e}); start with a new --recovery-dir"], source) from None
    problems = []
    if identity.get("flow") != flow_id:
        problems.append(f"it was made for flow {identity.get('flow')!r}, not {flow_id!r}")
    gone = sorted(set(identity.get("inputs", ())) - set(inputs))
    if gone:
        problems.append(f"it holds the read positions of {', '.join(gone)}, which this config does not read "
                        f"(it reads {', '.join(sorted(inputs))})")
    if identity.get("state_schema") != STATE_SCHEMA:
        problems.append(f"its state was written by sloguard {identity.get('sloguard')} in state schema "
                        f"{identity.get('state_schema')}; this sloguard {__version__} reads schema {STATE_SCHEMA}")
    if problems:
        raise ConfigError([f"{directory}: {p}" for p in problems]
                          + ["start with a new --recovery-dir, or run with the config that made this one"], source)
    added = sorted(set(inputs) - set(identity.get("inputs", ())))
    if added:
        _write(identity_path, {**identity, "inputs": sorted({*identity["inputs"], *added})})


def _write(path: Path, identity: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(identity, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)
