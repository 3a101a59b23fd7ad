"""verify/: the checks a retail controller does by hand, run over the warehouse alone.

`checks.py` declares every check (name, severity, rule); `registers.py`, `lines.py`,
`stores.py`, `journals.py` and `silence.py` hold their logic; `source.py` is the one read path
(the same SQL on every target, money summed as integer cents); `run.py` runs the checks and
writes `verify_findings`; `coverage.py` counts the z-reports a run judged; `report.py` prints
them and writes the metrics file; `bench.py` times a year of 300 registers. Nothing here calls
the Sitoo API.
"""

from sitoo_sync.verify.run import Scope, VerifyRun, run_verify

__all__ = ["Scope", "VerifyRun", "run_verify"]
