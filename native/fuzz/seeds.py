#!/usr/bin/env python3
"""Write the libFuzzer seed corpus for fuzz_segment.c from the real captures.

    python3 native/fuzz/seeds.py [outdir]      # default native/fuzz/corpus/

Each seed is the 10-byte option header of fuzz_segment.c followed by a frame. Frames come from
fixtures/captures/ (handshake, ACKs, super-packets with their recorded gso_size/checksum state);
super-packets are also shortened (IP length fixed up) so the fuzzer works on a few KB, and variants
add VLAN tags, clear DF on UDP (fragmentation path) or set URG, so every branch has a seed.
Also: `encode(frame, ...)` / `decode(data)` of the header, used by tests/test_native_fuzz.py.
"""
from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path
from typing import NamedTuple, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HDR = struct.Struct("<BHHHHB")  # b0, gso_size, mss, csum_start, csum_offset, k


def encode(frame: bytes, *, gso_size=0, mss=0, csum=0, csum_start=0, csum_offset=0, fcs=False,
           portable_csum=False, slice8=False, out_class=0, table_class=0, k=0) -> bytes:
    b0 = (csum & 3) | fcs << 2 | portable_csum << 3 | slice8 << 4 | (out_class & 3) << 5 | table_class << 7
    return HDR.pack(b0, gso_size & 0xFFFF, mss & 0xFFFF, csum_start & 0xFFFF, csum_offset & 0xFFFF,
                    k & 0xFF) + frame


def decode(data: bytes) -> dict | None:
    """The options and frame fuzz_segment.c reads from `data` (None if shorter than the header)."""
    if len(data) < HDR.size:
        return None
    b0, gso, mss, cs, co, k = HDR.unpack_from(data)
    return {"csum": b0 & 3, "append_fcs": bool(b0 & 4), "gso_size": gso, "mss": mss,
            "csum_start": cs, "csum_offset": co, "portable_csum": bool(b0 & 8),
            "slice8": bool(b0 & 16), "out_class": (b0 >> 5) & 3, "table_class": b0 >> 7, "k": k,
            "frame": data[HDR.size:]}


def _l3(frame: bytes) -> int:
    off = 14
    while struct.unpack_from("!H", frame, off - 2)[0] in (0x8100, 0x88A8):
        off += 4
    return off


def shorten(frame: bytes, payload: int) -> bytes:
    """A TCP/UDP super-packet cut to `payload` L4 payload bytes with IP (and UDP) lengths fixed."""
    l3 = _l3(frame)
    et = struct.unpack_from("!H", frame, l3 - 2)[0]
    f = bytearray(frame)
    if et == 0x0800:
        ihl = (f[l3] & 15) * 4
        proto, l4 = f[l3 + 9], l3 + ihl
    else:
        proto, l4 = f[l3 + 6], l3 + 40
    hl = (f[l4 + 12] >> 4) * 4 if proto == 6 else 8
    end = l4 + hl + payload
    del f[end:]
    if et == 0x0800:
        struct.pack_into("!H", f, l3 + 2, end - l3)
        struct.pack_into("!H", f, l3 + 10, 0)
        s = sum(struct.unpack_from(f"!{ihl // 2}H", f, l3))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        struct.pack_into("!H", f, l3 + 10, ~s & 0xFFFF)
    else:
        struct.pack_into("!H", f, l3 + 4, end - l3 - 40)
    if proto == 17:
        struct.pack_into("!H", f, l4 + 4, end - l4)
    return bytes(f)


def vlan(frame: bytes, tpids=(0x8100,)) -> bytes:
    tags = b"".join(struct.pack("!HH", t, 7 + i) for i, t in enumerate(tpids))
    return frame[:12] + tags + frame[12:]


def _ipv4_fix(f: bytearray, l3: int) -> None:
    ihl = (f[l3] & 15) * 4
    struct.pack_into("!H", f, l3 + 10, 0)
    s = sum(struct.unpack_from(f"!{ihl // 2}H", f, l3))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", f, l3 + 10, ~s & 0xFFFF)


def ipv4_options(frame: bytes, opts: bytes) -> bytes:
    """Insert IPv4 options (a multiple of 4 bytes) after the fixed header; lengths fixed up."""
    l3 = _l3(frame)
    f = bytearray(frame[:l3 + 20] + opts + frame[l3 + 20:])
    f[l3] = 0x40 | ((20 + len(opts)) // 4)
    struct.pack_into("!H", f, l3 + 2, struct.unpack_from("!H", f, l3 + 2)[0] + len(opts))
    _ipv4_fix(f, l3)
    return bytes(f)


def ipv6_exthdrs(frame: bytes, types: list[int]) -> bytes:
    """Insert 8-byte extension headers of the given types (0 hop-by-hop, 60 dest opts, 43 routing)."""
    l3 = _l3(frame)
    f = bytearray(frame)
    nxt = f[l3 + 6]
    chain = b""
    for i, t in enumerate(types):
        after = types[i + 1] if i + 1 < len(types) else nxt
        chain += bytes([after, 0]) + b"\x01\x04\0\0\0\0"
    f[l3 + 6] = types[0]
    struct.pack_into("!H", f, l3 + 4, struct.unpack_from("!H", f, l3 + 4)[0] + len(chain))
    return bytes(f[:l3 + 40] + chain + f[l3 + 40:])


class _Packet(NamedTuple):
    ts_ns: int
    frame: bytes
    outgoing: Optional[bool]
    meta: Optional[dict]     # the virtio_net_hdr as the capture's JSON comment carries it

    @property
    def gso_size(self) -> int:
        return self.meta["gso_size"] if self.meta and self.meta["gso_type"] else 0

    def segment_kwargs(self) -> dict:
        """Keyword arguments for native.segment() that say what the kernel told us."""
        m = self.meta or {}
        partial = bool(m.get("flags", 0) & 1)  # VIRTIO_NET_HDR_F_NEEDS_CSUM
        return {"gso_size": self.gso_size, "csum": 1 if partial else 0,
                "csum_start": m.get("csum_start", 0) if partial else 0,
                "csum_offset": m.get("csum_offset", 0) if partial else 0}


def load(name: str) -> list:
    """The packets of fixtures/captures/<name>_{tso,gso}.pcapng, read through the project's one
    capture codec (this script is a development tool, not part of the native library)."""
    sys.path.insert(0, str(ROOT))
    from pcap_backend.capfile import iter_capture
    path = next((ROOT / "fixtures" / "captures").glob(f"{name}_*.pcapng"))
    out = []
    for c in iter_capture(path):
        meta = None
        if c.meta is not None:
            j = c.meta.to_json()
            meta = {"dir": "out" if c.outgoing else "in", "flags": j["flags"],
                    "gso_type": j["gso_type"], "hdr_len": 0, "gso_size": j["gso_size"],
                    "csum_start": j["csum_start"], "csum_offset": j["csum_offset"]}
        out.append(_Packet(c.ts_ns, bytes(c.frame), c.outgoing, meta))
    return out


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name in ("tcp4", "tcp6", "udp4"):
        pkts = load(name)
        small = [p for p in pkts if len(p.frame) <= 1514]
        supers = sorted((p for p in pkts if p.gso_size and len(p.frame) > 1514), key=lambda p: len(p.frame))
        for i, p in enumerate(small[:4]):
            kw = p.segment_kwargs()
            out[f"{name}_small{i}"] = encode(p.frame, **kw)
        if supers:
            p = next((q for q in supers if len(q.frame) >= 10000), supers[-1])
            kw = p.segment_kwargs()
            for n in (1, 2, 3, 5):  # a few segments' worth
                out[f"{name}_super{n}seg"] = encode(shorten(p.frame, n * p.gso_size - 7), **kw)
            out[f"{name}_super_fcs"] = encode(shorten(p.frame, 3 * p.gso_size), fcs=True, **kw)
            out[f"{name}_super_vlan"] = encode(vlan(shorten(p.frame, 2 * p.gso_size + 1)), **kw)
            out[f"{name}_super_qinq"] = encode(vlan(shorten(p.frame, 2 * p.gso_size + 1), (0x88A8, 0x8100)), **kw)
            out[f"{name}_super_mss"] = encode(shorten(p.frame, 4000), mss=536, csum=2)
            out[f"{name}_super_tiny_out"] = encode(shorten(p.frame, 4000), gso_size=1000, out_class=2, k=100)
            out[f"{name}_super_tiny_table"] = encode(shorten(p.frame, 4000), gso_size=1000, table_class=1, k=2)
            if name.startswith("tcp"):
                f = bytearray(shorten(p.frame, 3000))
                l3 = _l3(f)
                l4 = l3 + ((f[l3] & 15) * 4 if name == "tcp4" else 40)
                f[l4 + 13] |= 0x20  # URG
                out[f"{name}_urg"] = encode(bytes(f), gso_size=1448)
            out[f"{name}_largest"] = encode(supers[-1].frame, **supers[-1].segment_kwargs())
        if name == "udp4" and supers:
            f = bytearray(shorten(supers[-1].frame, 4000))
            l3 = _l3(f)
            f[l3 + 6] &= ~0x40  # DF clear: no gso_size -> IPv4 fragmentation path
            struct.pack_into("!H", f, l3 + 10, 0)
            s = sum(struct.unpack_from("!10H", f, l3))
            while s >> 16:
                s = (s & 0xFFFF) + (s >> 16)
            struct.pack_into("!H", f, l3 + 10, ~s & 0xFFFF)
            out["udp4_fragment"] = encode(bytes(f), csum=1)
            # options: router alert (copied), 4 NOPs and a record-route (not copied)
            out["udp4_fragment_options"] = encode(
                ipv4_options(bytes(f), b"\x94\x04\0\0" + b"\x01" * 4 + b"\x07\x07\x04" + bytes(4) + b"\0"), csum=1)
        if name == "tcp6" and supers:
            base = shorten(supers[0].frame, 3000)
            kw = supers[0].segment_kwargs()
            out["tcp6_exthdrs"] = encode(ipv6_exthdrs(base, [0, 60, 43]), gso_size=1000)
            out["tcp6_exthdrs_9"] = encode(ipv6_exthdrs(base, [0] + [60] * 8), gso_size=1000)
            out["tcp6_three_tags_big"] = encode(vlan(base, (0x88A8, 0x8100, 0x8100)), **kw)
            out["tcp6_three_tags_small"] = encode(vlan(pkts[3].frame, (0x88A8, 0x8100, 0x8100)))
        if name == "tcp4" and supers:
            base = shorten(supers[0].frame, 4000)
            out["tcp4_ip_options"] = encode(ipv4_options(base, b"\x94\x04\0\0"), gso_size=1448, fcs=True)
    out["short"] = encode(b"\x02" * 13)
    out["bad_csum_mode"] = encode(b"\x00" * 60, csum=3)
    return out


def pcapng_seeds() -> dict[str, bytes]:
    """Small pcapng files for the atheris target (pcap_backend/fuzz/fuzz_capfile.py): real blocks, few packets."""
    import io

    from pcapng import FileWriter, blocks  # an encoder independent of ours: other byte layouts

    def write(pkts, tsresol=b"\x09", comment=True, flags=True):
        shb = blocks.SectionHeader(options={"shb_userappl": "a2065 seeds"})
        shb.new_member(blocks.InterfaceDescription, link_type=1, snaplen=262144,
                       options={"if_name": "x", "if_tsresol": tsresol})
        f = io.BytesIO()
        w = FileWriter(f, shb)
        for p in pkts:
            opts = {}
            if flags:
                opts["epb_flags"] = 2 if p.outgoing else 1
            if comment and p.meta:
                import json
                opts["opt_comment"] = json.dumps(p.meta, separators=(",", ":"))
            epb = shb.new_member(blocks.EnhancedPacket, interface_id=0, packet_data=p.frame,
                                 packet_len=len(p.frame), options=opts)
            epb.timestamp_high, epb.timestamp_low = p.ts_ns >> 32, p.ts_ns & 0xFFFFFFFF
            w.write_block(epb)
        return f.getvalue()

    tcp4, udp4 = load("tcp4"), load("udp4")
    return {
        "tcp4_handshake": write(tcp4[:6]),
        "tcp4_one_super_cut": write([tcp4[5]._replace(frame=tcp4[5].frame[:300])]),
        "udp4_small": write([p for p in udp4 if len(p.frame) < 200]),
        "no_comment_usec": write(tcp4[2:4], tsresol=b"\x06", comment=False, flags=False),
        "pow2_resolution": write(tcp4[2:3], tsresol=b"\x9e"),
    }


def main(argv) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else HERE / "corpus"
    outdir.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, data in sorted(seeds().items()):
        (outdir / f"{name}.bin").write_bytes(data)
        total += len(data)
    print(f"{len(seeds())} seeds, {total} bytes in {outdir}")
    pdir = (ROOT / "pcap_backend" / "fuzz" / "corpus") if len(argv) <= 1 else outdir / "pcapng"
    pdir.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(pcapng_seeds().items()):
        (pdir / f"{name}.pcapng").write_bytes(data)
    print(f"{len(pcapng_seeds())} pcapng seeds in {pdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
