"""The OCPP 2.0.1 device model: components, variables, their Actual attribute, mutability, type checks, reports."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import is_private, write_private

log = logging.getLogger(__name__)

Key = tuple[str, str | None, int | None, str, str | None]  # component, instance, evse id, variable, var instance

VENDOR_COMPONENT = "V2GStackISO15118BridgeCtrlr"
"""Our vendor-specific component (OCPP 2.0.1 allows custom components): the ISO 15118 bridge's own variables,
documented in docs/station.md."""
RENAMED_COMPONENTS = {"BridgeCtrlr": VENDOR_COMPONENT}
"""Component names of earlier versions -> today's, for device-model files saved by them."""


@dataclass(slots=True)
class Variable:
    """One variable of one component, with its Actual value and characteristics."""

    component: str
    name: str
    value: str
    data_type: str = "string"  # string, decimal, integer, dateTime, boolean, OptionList, SequenceList, MemberList
    mutability: str = "ReadWrite"  # ReadOnly, WriteOnly, ReadWrite
    values_list: str | None = None  # for OptionList / MemberList / SequenceList
    unit: str | None = None
    evse: int | None = None
    instance: str | None = None
    persistent: bool = True
    min_limit: float | None = None  # integer/decimal: the smallest value; string: the shortest length
    max_limit: float | None = None  # integer/decimal: the largest value; string: the longest length
    password: bool = False  # a passwordString: printable characters only

    @property
    def key(self) -> Key:
        """The identity of the variable in the model."""
        return (self.component, None, self.evse, self.name, self.instance)

    def component_json(self) -> dict[str, Any]:
        """The ComponentType object naming this variable's component."""
        c: dict[str, Any] = {"name": self.component}
        if self.evse is not None:
            c["evse"] = {"id": self.evse}
        return c

    def variable_json(self) -> dict[str, Any]:
        """The VariableType object naming this variable."""
        v: dict[str, Any] = {"name": self.name}
        if self.instance is not None:
            v["instance"] = self.instance
        return v

    def check(self, value: str) -> str | None:
        """Why `value` is not acceptable for this variable (None if it is). The reason never repeats the value
        (it may be a password)."""
        try:
            if self.data_type in ("integer", "decimal"):
                n = int(value) if self.data_type == "integer" else float(value)
                if n != n or n in (float("inf"), float("-inf")):
                    return "not a finite number"
                if self.min_limit is not None and n < self.min_limit:
                    return f"below {self.min_limit:g}"
                if self.max_limit is not None and n > self.max_limit:
                    return f"above {self.max_limit:g}"
            elif self.data_type == "boolean" and value not in ("true", "false"):
                return "not true/false"
        except ValueError:
            return f"not {self.data_type}"
        if self.data_type == "string":
            if self.min_limit is not None and len(value) < self.min_limit:
                return f"shorter than {self.min_limit:g} characters"
            if self.max_limit is not None and len(value) > self.max_limit:
                return f"longer than {self.max_limit:g} characters"
            if self.password and not value.isprintable():
                return "a passwordString has printable characters only"
        allowed = [x.strip() for x in (self.values_list or "").split(",") if x.strip()]
        if allowed:
            items = [value] if self.data_type == "OptionList" else [x.strip() for x in value.split(",") if x.strip()]
            bad = [x for x in items if x not in allowed]
            if bad or (self.data_type == "OptionList" and not items):
                return f"not in {self.values_list}"
        return None


def _comm(name: str, value: str, dtype: str = "integer", *args: Any, **kw: Any) -> Variable:
    """An OCPPCommCtrlr variable."""
    return Variable("OCPPCommCtrlr", name, value, dtype, *args, **kw)


TX_POINTS = "ParkingBayOccupancy,EVConnected,Authorized,DataSigned,PowerPathClosed,EnergyTransfer"
MEASURANDS = ("Energy.Active.Import.Register,Energy.Active.Export.Register,Power.Active.Import,Power.Active.Export,"
              "Current.Import,Current.Export,Voltage,SoC,Energy.Active.Net,Power.Active.Setpoint")
OPERATION_MODES = ("ChargingOnly,CentralSetpoint,ExternalSetpoint,ExternalLimits,CentralFrequency,LocalFrequency,"
                   "LocalLoadBalancing,Idle")
"""OCPP 2.1 OperationModeEnumType: every mode the station executes (V2XChargingCtrlr.SupportedOperationModes)."""
ENERGY_TRANSFER_MODES = "AC_single_phase,AC_two_phase,AC_three_phase,DC,AC_BPT,DC_BPT"


def standard_variables(station_id: str, evses: int, *, model: str, vendor: str, security_profile: int,
                       max_power_w: float | Callable[[int], float]) -> list[Variable]:
    """The components and variables this station implements, with their defaults; `max_power_w` is each EVSE's
    power (or a function of the EVSE id giving it)."""
    power = max_power_w if callable(max_power_w) else (lambda _: max_power_w)
    b = "boolean"
    out = [
        Variable("ChargingStation", "AvailabilityState", "Available", "OptionList", "ReadOnly",
                 "Available,Occupied,Reserved,Unavailable,Faulted", persistent=False),
        Variable("ChargingStation", "Available", "true", b, "ReadOnly", persistent=False),
        Variable("ChargingStation", "Model", model, mutability="ReadOnly"),
        Variable("ChargingStation", "VendorName", vendor, mutability="ReadOnly"),
        Variable("ChargingStation", "SupplyPhases", "3", "integer", "ReadOnly"),
        _comm("HeartbeatInterval", "300", min_limit=1, unit="s"),
        _comm("MessageTimeout", "30", instance="Default", min_limit=1, unit="s"),
        _comm("MessageAttemptInterval", "10", instance="TransactionEvent", min_limit=0, unit="s"),
        _comm("MessageAttempts", "3", instance="TransactionEvent", min_limit=1),
        _comm("NetworkConfigurationPriority", "0", "SequenceList", values_list="0"),
        _comm("NetworkProfileConnectionAttempts", "3", min_limit=1),
        _comm("OfflineThreshold", "60", min_limit=0, unit="s"),
        _comm("RetryBackOffRepeatTimes", "5", min_limit=0),
        _comm("RetryBackOffRandomRange", "10", min_limit=0, unit="s"),
        _comm("RetryBackOffWaitMinimum", "3", min_limit=0, unit="s"),
        _comm("ResetRetries", "2", min_limit=0),
        _comm("UnlockOnEVSideDisconnect", "true", b),
        _comm("WebSocketPingInterval", "60", min_limit=0, unit="s"),
        _comm("FileTransferProtocols", "HTTPS", "MemberList", "ReadOnly", "HTTP,HTTPS"),
        Variable("SampledDataCtrlr", "Enabled", "true", b),
        Variable("SampledDataCtrlr", "SignReadings", "false", b),
        _comm("PublicKeyWithSignedMeterValue", "Never", "OptionList",
              values_list="Never,OncePerTransaction,EveryMeterValue"),
        Variable("SampledDataCtrlr", "TxUpdatedInterval", "60", "integer", min_limit=0, unit="s"),
        Variable("SampledDataCtrlr", "TxUpdatedMeasurands", MEASURANDS, "MemberList", values_list=MEASURANDS),
        Variable("SampledDataCtrlr", "TxStartedMeasurands", MEASURANDS, "MemberList", values_list=MEASURANDS),
        Variable("SampledDataCtrlr", "TxEndedMeasurands", MEASURANDS, "MemberList", values_list=MEASURANDS),
        Variable("SampledDataCtrlr", "TxEndedInterval", "0", "integer", min_limit=0, unit="s"),
        Variable("AlignedDataCtrlr", "Interval", "0", "integer", min_limit=0, unit="s"),
        Variable("AlignedDataCtrlr", "Measurands", MEASURANDS, "MemberList", values_list=MEASURANDS),
        Variable("AuthCtrlr", "Enabled", "true", b),
        Variable("ReservationCtrlr", "Enabled", "true", b),
        Variable("ReservationCtrlr", "Available", "true", b, "ReadOnly"),
        Variable("ReservationCtrlr", "NonEvseSpecific", "true", b, "ReadOnly"),
        Variable("DisplayMessageCtrlr", "Enabled", "true", b),
        Variable("DisplayMessageCtrlr", "Available", "true", b, "ReadOnly"),
        Variable("DisplayMessageCtrlr", "DisplayMessages", "16", "integer", "ReadOnly"),
        Variable("DisplayMessageCtrlr", "SupportedFormats", "ASCII,UTF8", "MemberList", "ReadOnly", "ASCII,UTF8"),
        Variable("DisplayMessageCtrlr", "SupportedPriorities", "AlwaysFront,InFront,NormalCycle", "MemberList",
                 "ReadOnly", "AlwaysFront,InFront,NormalCycle"),
        Variable("SmartChargingCtrlr", "Enabled", "true", b),
        Variable("SmartChargingCtrlr", "Available", "true", b, "ReadOnly"),
        Variable("SmartChargingCtrlr", "RateUnit", "A,W", "MemberList", "ReadOnly", "A,W"),
        Variable("SmartChargingCtrlr", "PeriodsPerSchedule", "24", "integer", "ReadOnly"),
        Variable("SmartChargingCtrlr", "ProfileStackLevel", "99", "integer", "ReadOnly"),
        Variable("SmartChargingCtrlr", "Entries", "0", "integer", "ReadOnly", instance="ChargingProfiles",
                 persistent=False, max_limit=32),
        Variable("SmartChargingCtrlr", "LimitChangeSignificance", "1.0", "decimal", min_limit=0, unit="Percent"),
        Variable("SmartChargingCtrlr", "ExternalControlSignalsEnabled", "false", b),
        Variable("SmartChargingCtrlr", "NotifyChargingLimitWithSchedules", "false", b),
        # OCPP 2.1: the optional smart-charging features (what the V2X rules of ocpp/v2x.py are told)
        Variable("SmartChargingCtrlr", "SupportsDynamicProfiles", "true", b, "ReadOnly"),
        Variable("SmartChargingCtrlr", "SupportedAdditionalPurposes", "", "MemberList", "ReadOnly",
                 "PriorityCharging,LocalGeneration"),
        Variable("SmartChargingCtrlr", "SupportsEvseSleep", "false", b, "ReadOnly"),
        Variable("SmartChargingCtrlr", "SupportsUseLocalTime", "false", b, "ReadOnly"),
        Variable("SmartChargingCtrlr", "SupportsRandomizedDelay", "false", b, "ReadOnly"),
        Variable("SmartChargingCtrlr", "SupportsLimitAtSoC", "false", b, "ReadOnly"),
        Variable("SmartChargingCtrlr", "ACPhaseSwitchingSupported", "true", b, "ReadOnly"),
        Variable("ISO15118Ctrlr", "Enabled", "true", b),
        Variable("ISO15118Ctrlr", "PnCEnabled", "false", b),
        Variable("ISO15118Ctrlr", "CentralContractValidationAllowed", "true", b),
        Variable("ISO15118Ctrlr", "ContractValidationOffline", "false", b),
        Variable("ISO15118Ctrlr", "SeccId", "", "string", "ReadOnly", persistent=False),
        Variable(VENDOR_COMPONENT, "MirrorISO15118Messages", "false", b),  # the DataTransfer mirror
        Variable(VENDOR_COMPONENT, "MirrorISO15118Compression", "None", "OptionList", values_list="None,Gzip"),
        Variable("AuthCtrlr", "AuthorizeRemoteStart", "true", b),
        Variable("AuthCtrlr", "LocalAuthorizeOffline", "true", b),
        Variable("AuthCtrlr", "LocalPreAuthorize", "false", b),
        Variable("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "false", b),
        Variable("AuthCtrlr", "DisableRemoteAuthorization", "false", b),
        Variable("AuthCacheCtrlr", "Enabled", "true", b),
        Variable("AuthCacheCtrlr", "Available", "true", b, "ReadOnly"),
        Variable("AuthCacheCtrlr", "LifeTime", "86400", "integer", min_limit=0, unit="s"),
        Variable("LocalAuthListCtrlr", "Enabled", "true", b),
        Variable("LocalAuthListCtrlr", "Available", "true", b, "ReadOnly"),
        Variable("LocalAuthListCtrlr", "Entries", "0", "integer", "ReadOnly", persistent=False),
        Variable("LocalAuthListCtrlr", "ItemsPerMessage", "100", "integer", "ReadOnly"),
        Variable("LocalAuthListCtrlr", "BytesPerMessage", "65536", "integer", "ReadOnly"),
        Variable("TxCtrlr", "TxStartPoint", "EVConnected,Authorized", "MemberList", values_list=TX_POINTS),
        Variable("TxCtrlr", "TxStopPoint", "EVConnected,Authorized", "MemberList", values_list=TX_POINTS),
        Variable("TxCtrlr", "EVConnectionTimeOut", "60", "integer", min_limit=0, unit="s"),
        Variable("TxCtrlr", "StopTxOnEVSideDisconnect", "true", b),
        Variable("TxCtrlr", "StopTxOnInvalidId", "true", b),
        Variable("TxCtrlr", "MaxEnergyOnInvalidId", "0", "integer", min_limit=0, unit="Wh"),
        Variable("DeviceDataCtrlr", "ItemsPerMessage", "50", "integer", "ReadOnly", instance="GetVariables"),
        Variable("DeviceDataCtrlr", "ItemsPerMessage", "50", "integer", "ReadOnly", instance="SetVariables"),
        Variable("DeviceDataCtrlr", "BytesPerMessage", "65536", "integer", "ReadOnly", instance="GetVariables"),
        Variable("DeviceDataCtrlr", "BytesPerMessage", "65536", "integer", "ReadOnly", instance="SetVariables"),
        Variable("DeviceDataCtrlr", "ReportItemsPerMessage", "20", "integer", "ReadOnly", persistent=False),
        Variable("SecurityCtrlr", "SecurityProfile", str(security_profile), "integer", "ReadOnly"),
        Variable("SecurityCtrlr", "Identity", station_id, mutability="ReadOnly"),
        # A00.FR.205: a passwordString of 16 to 40 characters (the 2025-01 errata of OCPP 2.0.1 lifts the old
        # a-z A-Z 0-9 *-_=:+|@. alphabet: any UTF-8 characters; control characters are refused here)
        Variable("SecurityCtrlr", "BasicAuthPassword", "", mutability="WriteOnly", min_limit=16, max_limit=40,
                 password=True),
        Variable("SecurityCtrlr", "OrganizationName", "v2gstack"),
        # A02/A03 (and the 1.6 PnC note's keys of the same names): how long to wait for CertificateSigned, how often
        # to ask again; kept and reported (the station does not retry its SignCertificate by them yet)
        Variable("SecurityCtrlr", "CertSigningWaitMinimum", "60", "integer", min_limit=0, unit="s"),
        Variable("SecurityCtrlr", "CertSigningRepeatTimes", "3", "integer", min_limit=0),
    ]
    for e in range(1, evses + 1):
        out += [
            Variable("EVSE", "AvailabilityState", "Available", "OptionList", "ReadOnly",
                     "Available,Occupied,Reserved,Unavailable,Faulted", evse=e, persistent=False),
            Variable("EVSE", "Available", "true", b, "ReadOnly", evse=e, persistent=False),
            Variable("EVSE", "Power", f"{power(e):g}", "decimal", "ReadOnly", unit="W", evse=e),
            Variable("EVSE", "SupplyPhases", "3", "integer", "ReadOnly", evse=e),
            Variable("V2XChargingCtrlr", "Enabled", "true", b, evse=e),
            Variable("V2XChargingCtrlr", "Available", "true", b, "ReadOnly", evse=e),
            Variable("V2XChargingCtrlr", "SupportedOperationModes", OPERATION_MODES, "MemberList", "ReadOnly",
                     OPERATION_MODES, evse=e),
            Variable("V2XChargingCtrlr", "SupportedEnergyTransferModes", ENERGY_TRANSFER_MODES, "MemberList",
                     "ReadOnly", ENERGY_TRANSFER_MODES, evse=e),
            Variable("FiscalMetering", "PublicKey", "", "string", "ReadOnly", evse=e, persistent=False),
        ]
    return out


@dataclass
class DeviceModel:
    """All variables of the station, looked up by component/variable names; persisted to a JSON file if given."""

    variables: list[Variable]
    path: Path | None = None
    on_change: list[Callable[[Variable], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_key: dict[Key, Variable] = {v.key: v for v in self.variables}
        self._components = {(v.component, v.evse) for v in self.variables}
        self._load()

    def __iter__(self) -> Iterator[Variable]:
        """Every variable, in definition order."""
        return iter(self.variables)

    def find(self, component: str, name: str, *, evse: int | None = None, instance: str | None = None,
             ) -> Variable | None:
        """The variable, or None."""
        return self._by_key.get((component, None, evse, name, instance))

    def value(self, component: str, name: str, *, evse: int | None = None, instance: str | None = None) -> str:
        """The Actual value of a variable the station itself relies on (KeyError if it is missing)."""
        v = self.find(component, name, evse=evse, instance=instance)
        if v is None:
            raise KeyError(f"{component}.{name}")
        return v.value

    def int(self, component: str, name: str, **kw: Any) -> int:
        """An integer variable's value."""
        return int(self.value(component, name, **kw))

    def bool(self, component: str, name: str, **kw: Any) -> bool:
        """A boolean variable's value (one look-up: the bridge asks for a few in every charge loop)."""
        v = self._by_key.get((component, None, kw.get("evse"), name, kw.get("instance")))
        if v is None:
            raise KeyError(f"{component}.{name}")
        return v.value == "true"

    def members(self, component: str, name: str, **kw: Any) -> list[str]:
        """A MemberList/SequenceList variable's items."""
        return [x.strip() for x in self.value(component, name, **kw).split(",") if x.strip()]

    def put(self, component: str, name: str, value: str, **kw: Any) -> None:
        """Set a value from inside the station (no mutability check: e.g. AvailabilityState, HeartbeatInterval)."""
        v = self.find(component, name, **kw)
        if v is not None and v.value != value:
            v.value = value
            self._changed(v)

    # ----- GetVariables / SetVariables -----

    def _locate(self, component: dict[str, Any], variable: dict[str, Any]) -> tuple[str, Variable | None]:
        """Resolve a request's component/variable to a status and the variable."""
        evse = (component.get("evse") or {}).get("id")
        if component.get("instance") is not None or (component["name"], evse) not in self._components:
            return "UnknownComponent", None
        v = self._by_key.get((component["name"], None, evse, variable["name"], variable.get("instance")))
        return ("Accepted", v) if v is not None else ("UnknownVariable", None)

    def get_variable(self, item: dict[str, Any]) -> dict[str, Any]:
        """One getVariableResult for one getVariableData item."""
        status, v = self._locate(item["component"], item["variable"])
        result: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
        attr = item.get("attributeType", "Actual")
        if attr != "Actual":
            result["attributeType"] = attr
        if v is not None and attr != "Actual":
            status = "NotSupportedAttributeType"
        elif v is not None and v.mutability == "WriteOnly":
            status = "Rejected"
        result["attributeStatus"] = status
        if status == "Accepted" and v is not None:
            result["attributeValue"] = v.value
        return result

    def set_variable(self, item: dict[str, Any]) -> dict[str, Any]:
        """One setVariableResult for one setVariableData item (applies the value when Accepted)."""
        status, v = self._locate(item["component"], item["variable"])
        result: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
        attr = item.get("attributeType", "Actual")
        if attr != "Actual":
            result["attributeType"] = attr
        if v is not None:
            problem = None
            if attr != "Actual":
                status = "NotSupportedAttributeType"
            elif v.mutability == "ReadOnly":
                status, problem = "Rejected", "ReadOnly"
            else:
                problem = v.check(item["attributeValue"])
                status = "Rejected" if problem else "Accepted"
            if problem:
                result["attributeStatusInfo"] = {"reasonCode": "InvalidValue" if problem != "ReadOnly"
                                                 else "ReadOnly", "additionalInfo": problem[:512]}
            if status == "Accepted" and v.value != item["attributeValue"]:
                v.value = item["attributeValue"]
                self._changed(v)
        result["attributeStatus"] = status
        return result

    # ----- reports -----

    def report(self, base: str) -> list[dict[str, Any]]:
        """The reportData items of a GetBaseReport of kind `base`."""
        out = []
        for v in self.variables:
            if base == "ConfigurationInventory" and v.mutability == "ReadOnly":
                continue
            if base == "SummaryInventory" and v.name not in ("AvailabilityState", "Available"):
                continue
            attr: dict[str, Any] = {"type": "Actual", "mutability": v.mutability, "persistent": v.persistent}
            if v.mutability != "WriteOnly":
                attr["value"] = v.value
            chars: dict[str, Any] = {"dataType": v.data_type, "supportsMonitoring": False}
            if v.unit:
                chars["unit"] = v.unit
            if v.values_list:
                chars["valuesList"] = v.values_list
            if v.min_limit is not None:
                chars["minLimit"] = v.min_limit
            if v.max_limit is not None:
                chars["maxLimit"] = v.max_limit
            out.append({"component": v.component_json(), "variable": v.variable_json(),
                        "variableAttribute": [attr], "variableCharacteristics": chars})
        return out

    # ----- persistence -----

    def _changed(self, v: Variable) -> None:
        """Persist and tell the listeners."""
        if v.persistent:
            self._save()
        for cb in self.on_change:
            cb(v)

    def _save(self) -> None:
        """Write persistent values to the JSON file: atomically, and owner-only from the file's creation on (it may
        hold the Basic auth password)."""
        if self.path is None:
            return
        data = [[v.component, v.evse, v.name, v.instance, v.value] for v in self.variables if v.persistent]
        write_private(self.path, json.dumps(data).encode())

    def _load(self) -> None:
        """Read values saved by an earlier run: unknown entries and values that fail today's checks are ignored; a
        file that others could read, or that names a component by its old name (both written by an older version),
        is written anew, owner-only, with today's names."""
        if self.path is None or not self.path.exists():
            return
        renamed = False
        for component, evse, name, instance, value in json.loads(self.path.read_text(encoding="utf-8")):
            if component in RENAMED_COMPONENTS:
                component, renamed = RENAMED_COMPONENTS[component], True
            v = self.find(component, name, evse=evse, instance=instance)
            if v is None or not v.persistent or v.mutability == "ReadOnly":
                continue
            if v.check(value) is not None:
                log.warning("device model: ignoring the saved %s.%s (%s)", component, name, v.check(value))
                continue
            v.value = value
        if renamed or not is_private(self.path):
            self._save()


def chunks(items: Iterable[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Split report items into NotifyReport-sized parts (at least one part, possibly empty)."""
    lst = list(items)
    return [lst[i:i + size] for i in range(0, len(lst), size)] or [[]]
