"""Snapshot of a whole A2065 card: plain data, a versioned byte format, and upgrades.

``board.snapshot()`` returns a dict of plain data (ints, bools, str, bytes, lists, dicts, None)::

    format        "a2065-board"
    version       1 (CURRENT_VERSION)
    time_ns       emulated time of the chip when taken
    serial, variant, timing    how to rebuild the same card
    autoconfig    {"state": "unconfigured"|"configured"|"shut_up", "base": int|None, "latch": int}
    irq_level     the INT2 level last reported to the host
    stats         the board's counters
    ram           bytes(32768), the buffer RAM
    chip          chip.snapshot() (registers, ring state, pending events with absolute times)
    pending_events  copy of the chip's next deadline for readers ({"next_deadline": int|None});
                  informational: the chip restores its own events from ``chip``

Backends are never saved: the board does not know them (the transmit callback is re-given to
``A2065.from_snapshot(..., transmit=...)`` or set again by the bridge).

Bytes (``to_bytes``/``from_bytes``), a ``construct`` schema::

    "A2065SNP"  magic, 8 bytes
    version     u16 big-endian (the same number as the dict's "version")
    body        u32 length + one tagged value (the dict above)
    crc32       u32 of the body bytes including its length prefix

A tagged value is a u8 tag and its payload: 0 None, 1 False, 2 True, 3 int as s64, 4 int that
does not fit s64 as u16-length signed big-endian bytes, 5 str (u32 length, UTF-8), 6 bytes (u32
length), 7 list and 9 tuple (u32 count, values), 8 dict (u32 count, key value pairs). Floats and
other types are refused: the model keeps no floats.

Versions: ``upgrade(state)`` brings an old snapshot to CURRENT_VERSION one step at a time through
``UPGRADES[v]`` (a function from a version-v dict to a version-v+1 dict). The chain covers the
whole card, the chip's part too: card version v holds the chip state layout
``CHIP_STATE_VERSION[v]`` (the ``version`` inside ``state["chip"]``), so a step that changes the
chip's layout rewrites ``state["chip"]`` and its version, and ``upgrade`` refuses a state whose
chip part is not the layout its card version says. The chip (``lance.chip.STATE_VERSION``)
restores the current layout only. Version 1 is current, so the chain is empty; each released
version keeps a fixture in ``fixtures/snapshots/`` that a test loads.
"""
from __future__ import annotations

import struct
import zlib
from os import PathLike
from typing import TYPE_CHECKING, Any, Callable, TypeVar, Union

from construct import (Adapter, Const, Int8ub, Int16ub, Int32ub, Int64sb, LazyBound,
                       PascalString, Pass, Prefixed, PrefixedArray, RawCopy, Struct, Switch,
                       GreedyBytes, Checksum, this)

if TYPE_CHECKING:
    from .board import A2065

#: A snapshot: plain data (None, bool, int, str, bytes, list, tuple, dict) keyed by str.
State = dict[str, Any]
_T = TypeVar("_T")
_Board = TypeVar("_Board", bound="A2065")

FORMAT = "a2065-board"
CURRENT_VERSION = 1
MAGIC = b"A2065SNP"
#: Largest snapshot file ``from_bytes`` accepts. A board state is ~34 KB (32 KB RAM + chip state;
#: at most one frame of <= 32 KB in flight per direction adds < 70 KB), and parsing hostile
#: bytes through construct costs ~40 s of CPU and ~17x the input in memory per MB, so files are
#: capped and their CRC is checked before any of the body is parsed.
MAX_SNAPSHOT_BYTES = 256 * 1024
_HEAD = struct.Struct(">8sHI")

#: version v -> function(state of version v) -> state of version v + 1 (chip part included)
UPGRADES: dict[int, Callable[[State], State]] = {}
#: card snapshot version -> the chip state layout (``state["chip"]["version"]``) it holds
CHIP_STATE_VERSION = {1: 1}


class SnapshotError(ValueError):
    """A snapshot that cannot be loaded (wrong format, unknown version, bad bytes)."""


# -- tagged plain-data encoding --------------------------------------------------------------

_NONE, _FALSE, _TRUE, _INT, _BIGINT, _STR, _BYTES, _LIST, _DICT, _TUPLE = range(10)
_S64_MIN, _S64_MAX = -(1 << 63), (1 << 63) - 1


def _big_to_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)


class _PlainValue(Adapter):  # type: ignore[misc]  # construct has no types
    def _encode(self, obj: object, context: Any, path: str) -> dict[str, Any]:
        if obj is None:
            return {"tag": _NONE, "v": None}
        if obj is True:
            return {"tag": _TRUE, "v": None}
        if obj is False:
            return {"tag": _FALSE, "v": None}
        if isinstance(obj, int):
            obj = int(obj)  # IntFlag and friends become plain ints
            if _S64_MIN <= obj <= _S64_MAX:
                return {"tag": _INT, "v": obj}
            return {"tag": _BIGINT, "v": _big_to_bytes(obj)}
        if isinstance(obj, str):
            return {"tag": _STR, "v": obj}
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return {"tag": _BYTES, "v": bytes(obj)}
        if isinstance(obj, list):
            return {"tag": _LIST, "v": obj}
        if isinstance(obj, tuple):
            return {"tag": _TUPLE, "v": list(obj)}
        if isinstance(obj, dict):
            return {"tag": _DICT, "v": [{"k": k, "v": v} for k, v in obj.items()]}
        raise SnapshotError(f"not plain snapshot data: {type(obj).__name__} at {path}")

    def _decode(self, obj: Any, context: Any, path: str) -> Any:
        tag, v = obj.tag, obj.v
        if tag == _NONE:
            return None
        if tag == _TRUE:
            return True
        if tag == _FALSE:
            return False
        if tag == _INT:
            return int(v)
        if tag == _BIGINT:
            return int.from_bytes(v, "big", signed=True)
        if tag == _STR:
            return str(v)
        if tag == _BYTES:
            return bytes(v)
        if tag == _LIST:
            return list(v)
        if tag == _TUPLE:
            return tuple(v)
        if tag == _DICT:
            return {kv.k: kv.v for kv in v}
        raise SnapshotError(f"unknown value tag {tag}")


VALUE: Any = _PlainValue(Struct(
    "tag" / Int8ub,
    "v" / Switch(this.tag, {
        _NONE: Pass, _FALSE: Pass, _TRUE: Pass,
        _INT: Int64sb,
        _BIGINT: Prefixed(Int16ub, GreedyBytes),
        _STR: PascalString(Int32ub, "utf8"),
        _BYTES: Prefixed(Int32ub, GreedyBytes),
        _LIST: PrefixedArray(Int32ub, LazyBound(lambda: VALUE)),
        _TUPLE: PrefixedArray(Int32ub, LazyBound(lambda: VALUE)),
        _DICT: PrefixedArray(Int32ub, Struct("k" / LazyBound(lambda: VALUE),
                                             "v" / LazyBound(lambda: VALUE))),
    }),
))

SNAPSHOT_FILE = Struct(
    "magic" / Const(MAGIC),
    "version" / Int16ub,
    "body" / RawCopy(Prefixed(Int32ub, VALUE)),
    "crc32" / Checksum(Int32ub, lambda data: zlib.crc32(data), this.body.data),
)


def to_bytes(state: State) -> bytes:
    """Encode a snapshot dict (any version) through the construct schema."""
    version = state.get("version")
    if not isinstance(version, int) or not 0 <= version <= 0xFFFF:
        raise SnapshotError(f"snapshot has no usable version: {version!r}")
    data: bytes = SNAPSHOT_FILE.build({"magic": MAGIC, "version": version,
                                       "body": {"value": state}, "crc32": None})
    return data


def from_bytes(data: bytes, *, upgrade_to_current: bool = True) -> State:
    """Decode bytes made by ``to_bytes``; by default upgrade to the current version.

    Untrusted input: over ``MAX_SNAPSHOT_BYTES``, a wrong magic, a body length that does not
    match the file or a wrong CRC-32 are refused before the body is parsed."""
    data = bytes(data)
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"not an A2065 snapshot: {len(data)} bytes is more than the "
                            f"{MAX_SNAPSHOT_BYTES} a board state can take")
    if len(data) < _HEAD.size + 4:
        raise SnapshotError(f"not an A2065 snapshot: only {len(data)} bytes")
    magic, _version, body_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError("not an A2065 snapshot: wrong magic")
    if _HEAD.size + body_len + 4 > len(data):
        raise SnapshotError(f"not an A2065 snapshot: body of {body_len} bytes runs past the end")
    crc = struct.unpack_from(">I", data, _HEAD.size + body_len)[0]
    if zlib.crc32(data[10:_HEAD.size + body_len]) != crc:
        raise SnapshotError("not an A2065 snapshot: CRC-32 mismatch (damaged file)")
    try:
        parsed = SNAPSHOT_FILE.parse(data)
    except SnapshotError:
        raise
    except Exception as e:  # construct raises many kinds; one error for the caller
        raise SnapshotError(f"not an A2065 snapshot: {e}") from e
    state: State = parsed.body.value
    if not isinstance(state, dict) or state.get("version") != parsed.version:
        raise SnapshotError("header version and body version differ")
    return upgrade(state) if upgrade_to_current else state


def upgrade(state: State) -> State:
    """Bring a snapshot dict to CURRENT_VERSION, one registered step per old version."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SnapshotError(f"not an {FORMAT} snapshot")
    version = state.get("version")
    if not isinstance(version, int) or version < 1 or version > CURRENT_VERSION:
        raise SnapshotError(f"unsupported snapshot version {version!r} "
                            f"(this build reads 1..{CURRENT_VERSION})")
    _check_chip_layout(state, version)
    while version < CURRENT_VERSION:
        step = UPGRADES.get(version)
        if step is None:
            raise SnapshotError(f"no upgrade step from version {version}")
        state = step(dict(state))
        if state.get("version") != version + 1:
            raise SnapshotError(f"upgrade step from {version} did not produce {version + 1}")
        version += 1
        _check_chip_layout(state, version)
    return state


def _check_chip_layout(state: State, version: int) -> None:
    """A card state of ``version`` carries the chip layout that version defines (a state without
    a chip part, e.g. a test's bare dict, has nothing to check)."""
    chip = state.get("chip")
    if chip is None:
        return
    want = CHIP_STATE_VERSION.get(version)
    got = chip.get("version") if isinstance(chip, dict) else None
    if got != want:
        raise SnapshotError(f"snapshot version {version} holds chip state version {want}, "
                            f"found {got!r}")


def save(path: Union[str, PathLike[str]], state: State) -> None:
    with open(path, "wb") as f:
        f.write(to_bytes(state))


def load(path: Union[str, PathLike[str]]) -> State:
    with open(path, "rb") as f:
        return from_bytes(f.read())


# -- board <-> state -------------------------------------------------------------------------

def board_state(board: A2065) -> State:
    chip = board.lance
    return {
        "format": FORMAT,
        "version": CURRENT_VERSION,
        "time_ns": int(chip.now),
        "serial": board.serial,
        "variant": board.variant,
        "timing": board.timing,
        "autoconfig": board.autoconfig.snapshot(),
        "irq_level": bool(board._irq_level),
        "stats": dict(board.stats),
        "ram": bytes(board.ram),
        "chip": chip.snapshot(),
        "pending_events": {"next_deadline": chip.next_deadline()},
    }


def restore_board(board: A2065, state: State) -> None:
    """Load ``state`` into an existing board (same RAM object; identity may change).

    Snapshots are untrusted input: the state is first restored into a scratch board, so a
    damaged one raises SnapshotError and leaves ``board`` untouched (never half-restored)."""
    state = upgrade(state)
    _validated(lambda: _restore_into(_scratch_board(board, state), state))
    _restore_into(board, state)


def _validated(fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except SnapshotError:
        raise
    except Exception as e:  # KeyError, TypeError, ValueError, ... from a damaged state
        raise SnapshotError(f"damaged snapshot: {type(e).__name__}: {e}") from e


def _scratch_board(board: A2065, state: State) -> A2065:
    return type(board)(serial=int(state["serial"]), variant=state["variant"],
                       timing=state["timing"], strict=True)


def _restore_into(board: A2065, state: State) -> None:
    ram = state["ram"]
    if len(ram) != len(board.ram):
        raise SnapshotError(f"RAM is {len(ram)} bytes, expected {len(board.ram)}")
    if (state["serial"], state["variant"]) != (board.serial, board.variant):
        board._set_identity(state["serial"], state["variant"])
    board.autoconfig.restore(state["autoconfig"])
    board.ram[:] = ram  # in place: the chip's DMA port holds this bytearray
    board.stats.update(state.get("stats", {}))
    board.lance.restore(state["chip"])  # the chip restores its own timing mode and events
    board.timing = state["timing"]
    # The host saw irq_level last; report an edge only if the restored chip disagrees.
    board._irq_level = bool(state["irq_level"])
    board._sync_irq()


def board_from_state(cls: type[_Board], state: State, **kwargs: Any) -> _Board:
    """Build a new board of class ``cls`` from a snapshot; kwargs: irq, on_configured,
    transmit, strict (everything that is not saved)."""
    state = upgrade(state)
    board = _validated(lambda: cls(serial=int(state["serial"]), variant=state["variant"],
                                   timing=state["timing"], **kwargs))
    restore_board(board, state)
    return board
