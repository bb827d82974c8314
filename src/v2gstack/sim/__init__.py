"""Simulation on top of every role: scripted scenarios (arrivals, faults, expectations) and the fleet simulation
(a CSMS, stations and a fleet of cars on loopback under grid signals), each with a report."""
