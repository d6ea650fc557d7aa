"""Run the currencies flow once against the Prefect server in PREFECT_API_URL (a test's subprocess).

Usage: python tests/operations/run_currencies_flow.py <seconds to wait for the pipeline lock>
"""

from __future__ import annotations

import sys

from flows import lock
from flows.currencies import currencies_flow

if __name__ == "__main__":
    lock.PIPELINE_LOCK_TIMEOUT_SECONDS = float(sys.argv[1])
    state = currencies_flow(return_state=True)
    print(f"final state: {state.type.value}: {state.message}")
