"""simulator/: a fake Sitoo API on loopback, for `sitoo-sync demo`, benchmarks and tests.

Bottom to top: chain.py (the chain's stores, groups, staff, zones; a register's and a
z-report's records), money.py (cents and money strings), config.py and rest_v2/config.py
(the knobs), params.py (the POS APIs' query parameters and error answer); journal.py and
lazy_journal.py (registers' journals, read from a world through `journal.JournalSource`),
store_reports.py (the backend's store aggregation) and rest_v2/ (orders, catalogue, stock);
data.py (`World`: the registers and their z-reports, holding their journal); server.py
(the HTTP routes) with faults.py (injected faults).
"""

from sitoo_sync.simulator.config import SimConfig
from sitoo_sync.simulator.data import World
from sitoo_sync.simulator.faults import FaultPlan
from sitoo_sync.simulator.rest_v2.config import RestConfig
from sitoo_sync.simulator.rest_v2.world import RestWorld
from sitoo_sync.simulator.server import Simulator

__all__ = ["FaultPlan", "RestConfig", "RestWorld", "SimConfig", "Simulator", "World"]
