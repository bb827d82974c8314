"""Names shared by the station and the CSMS: the vendorId of the ISO facts, the ISO message mirror's vendorIds, and
the protocol display names. Defined once here so that both ends match them the same way."""

from __future__ import annotations

ISO_FACTS_VENDOR = "org.v2gstack.iso15118"
"""customData.vendorId of the ISO 15118 facts (SessionID, EVCCID, protocol, trace id) in TransactionEvents."""

PROTOCOL_NAMES: dict[str, str] = {"din": "DIN70121", "iso2": "ISO15118-2", "iso20": "ISO15118-20"}
"""Our EXI protocol keys -> the names the station reports to the CSMS (customData `protocol`, the timeline)."""

MIRROR_VENDOR: dict[str, str] = {"iso2": "ISO15118-2", "din": "DIN70121"}
"""EXI namespace -> the DataTransfer vendorId under which a station mirrors its ISO messages to the CSMS (every
ISO 15118-20 namespace mirrors as MIRROR_VENDOR_ISO20)."""

MIRROR_VENDOR_ISO20 = "ISO15118-20"

ISO_MIRROR_NAMESPACES: dict[str, tuple[str, ...]] = {
    "ISO15118-2": ("iso2",),
    "DIN70121": ("din",),
    "DIN": ("din",),
    MIRROR_VENDOR_ISO20: ("iso20", "iso20_ac", "iso20_dc", "iso20_wpt", "iso20_acdp"),
}
"""Mirror vendorId -> the EXI namespaces the CSMS tries to decode its data with (a -20 message may be in the common,
AC or DC schema)."""

GRID_SIM_VENDOR = "org.v2gstack.grid"
"""DataTransfer vendorId of the simulated grid frequency's knob (messageId SetGridFrequency / GetGridFrequency)."""
