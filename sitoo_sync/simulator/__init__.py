"""simulator/: a fake Sitoo API on loopback, for `sitoo-sync demo`, benchmarks and tests."""

from sitoo_sync.simulator.data import SimConfig, World
from sitoo_sync.simulator.faults import FaultPlan
from sitoo_sync.simulator.rest_v2.config import RestConfig
from sitoo_sync.simulator.rest_v2.world import RestWorld
from sitoo_sync.simulator.server import Simulator

__all__ = ["FaultPlan", "RestConfig", "RestWorld", "SimConfig", "Simulator", "World"]
