"""What a bridged EVSE offers the EV besides its hardware: identity, energy modes, how EIM authorization happens, and
how much the EV may feed back under OCPP 2.0.1."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BridgeConfig:
    """The ISO 15118 side of the bridged EVSEs (their power figures are the hardware's: StationConfig.hardware)."""

    evse_ids: dict[int, str] = field(default_factory=dict)  # EVSE -> ISO EVSEID; default DE*V2G*E<station>*<n>
    din_evse_id: str = "00"
    energy_modes: tuple[str, ...] = ("AC_three_phase_core", "DC_extended")
    id_token: dict[str, str] | None = None  # a token presented at the EVSE (RFID); None: wait for the CSMS
    schedule_duration: int = 86400  # s covered by the SAScheduleTuple / ScheduleTuple
    allow_discharge_w: float = 0.0
    """ISO 15118-20 bidirectional power under OCPP 2.0.1 (which has no discharge permission of its own): the most the
    EV may feed back (W), within the hardware's discharge limits. 0 (the default): the AC_BPT and DC_BPT services are
    not offered and no EV discharges; above 0 they are, with this as EVSEMaximumDischargePower, and a negative
    charging-profile limit (a TxProfile) asks the EV to discharge."""
