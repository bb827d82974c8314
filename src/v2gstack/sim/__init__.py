"""Simulation on top of every role: scripted scenarios (arrivals, faults, expectations) with a report."""
