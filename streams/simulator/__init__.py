"""``debitwatch simulate``: labelled card-payment traffic with ghost debits.

The generator (:class:`Simulation`) yields ``(arrival_time_us, source, event_json)`` in
arrival order and collects the ground truth (:attr:`Simulation.truth`); the file writer
is one consumer of it, a Kafka producer pacing by wall clock can be another::

    from streams.simulator import PROFILES, Simulation, SimulationConfig

    simulation = Simulation(SimulationConfig(profile=PROFILES["storm"], transactions=1000))
    for arrival_us, source, event_json in simulation:
        ...
    truth = simulation.truth  # plus simulation.incidents, known from the start

Modules, one job each: :mod:`.profiles` (rates), :mod:`.fleet` (merchants, terminals,
cards), :mod:`.transaction` (one key's events), :mod:`.scenarios` (the steps of a
sale, benign stories), :mod:`.anomalies` (the faults), :mod:`.incidents` (fleet-level
incidents: outages, slow issuers, faulty terminals, duplicate bursts), :mod:`.catalogue`
(scenarios by name), :mod:`.verdict` (the contract's rules, for the truth), :mod:`.encode` and
:mod:`.timefmt` (text formats), :mod:`.disorder` (arrival delays), :mod:`.ordering`
(arrival order), :mod:`.emitter` (the per-event hot loop), :mod:`.generator` (the run),
:mod:`.writer` (files), :mod:`.cli_args` (the command line).
"""

from streams.simulator.cli_args import add_arguments, run, run_simulate
from streams.simulator.generator import (
    Simulation,
    SimulationConfig,
    SimulationStats,
    SimulatorError,
)
from streams.simulator.ordering import Arrival
from streams.simulator.profiles import PROFILES, Profile, ProfileError, resolve
from streams.simulator.writer import write_capture, write_truth

__all__ = [
    "PROFILES",
    "Arrival",
    "Profile",
    "ProfileError",
    "Simulation",
    "SimulationConfig",
    "SimulationStats",
    "SimulatorError",
    "add_arguments",
    "resolve",
    "run",
    "run_simulate",
    "write_capture",
    "write_truth",
]
