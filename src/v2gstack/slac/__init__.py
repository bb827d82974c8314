"""SLAC (ISO 15118-3) over HomePlug Green PHY: typed MMEs, sans-I/O EVSE and EV state machines, a raw-socket shell
and a simulated medium. See docs/slac.md."""
