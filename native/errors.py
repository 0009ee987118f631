"""Error codes of ``segment()`` (native/SPEC.md) and the exception raised for each.

The C core returns the negative code; the Python API and the oracle raise the subclass of
:class:`SegmentError` that carries that code.
"""

from typing import Optional

ERR_TRUNCATED = -1
ERR_ETHERTYPE = -2
ERR_VLAN = -3
ERR_IPHDR = -4
ERR_FRAGMENT = -5
ERR_EXTHDR = -6
ERR_PROTO = -7
ERR_TCPHDR = -8
ERR_URG = -9
ERR_MSS = -10
ERR_UDPHDR = -11
ERR_UDP_NOSEG = -12
ERR_OUT_SPACE = -13
ERR_TABLE_SPACE = -14
ERR_ARG = -15


class SegmentError(ValueError):
    """A super-packet that cannot be turned into wire frames safely (or a bad argument)."""

    code = 0
    reason = "segmentation error"

    def __init__(self, detail: Optional[str] = None) -> None:
        self.detail = detail
        super().__init__(f"{self.reason} ({self.code})" + (f": {detail}" if detail else ""))


def _make(name: str, code: int, reason: str) -> type[SegmentError]:
    cls: type[SegmentError] = type(name, (SegmentError,), {"code": code, "reason": reason, "__doc__": reason})
    return cls


TruncatedError = _make("TruncatedError", ERR_TRUNCATED, "headers or IP length beyond the captured bytes")
EthertypeError = _make("EthertypeError", ERR_ETHERTYPE, "unknown ethertype over the wire maximum")
VlanError = _make("VlanError", ERR_VLAN, "more than two VLAN tags on an oversized frame")
IpHeaderError = _make("IpHeaderError", ERR_IPHDR, "bad IP version, IHL or total length")
FragmentError = _make("FragmentError", ERR_FRAGMENT, "an IP fragment over the wire maximum")
ExtHeaderError = _make("ExtHeaderError", ERR_EXTHDR, "IPv6 extension header chain longer than 8")
ProtocolError = _make("ProtocolError", ERR_PROTO, "oversized frame whose L4 is neither TCP nor UDP")
TcpHeaderError = _make("TcpHeaderError", ERR_TCPHDR, "TCP data offset < 5 or past the IP packet")
UrgError = _make("UrgError", ERR_URG, "URG with data that would have to be split")
MssError = _make("MssError", ERR_MSS, "no positive segment size fits")
UdpHeaderError = _make("UdpHeaderError", ERR_UDPHDR, "UDP header past the IP packet")
UdpNoSegError = _make("UdpNoSegError", ERR_UDP_NOSEG, "oversized UDP without gso_size that may not be fragmented")
OutSpaceError = _make("OutSpaceError", ERR_OUT_SPACE, "output buffer too small")
TableSpaceError = _make("TableSpaceError", ERR_TABLE_SPACE, "more frames than table entries")
ArgError = _make("ArgError", ERR_ARG, "bad argument (NULL pointer, unknown csum mode, out of range)")

ERRORS = {
    cls.code: cls
    for cls in (
        TruncatedError, EthertypeError, VlanError, IpHeaderError, FragmentError, ExtHeaderError,
        ProtocolError, TcpHeaderError, UrgError, MssError, UdpHeaderError, UdpNoSegError,
        OutSpaceError, TableSpaceError, ArgError,
    )
}


def error_for(code: int, detail: Optional[str] = None) -> SegmentError:
    """The exception instance for a negative C return code."""
    cls = ERRORS.get(code)
    if cls is None:
        return SegmentError(f"unknown error code {code}")
    return cls(detail)
