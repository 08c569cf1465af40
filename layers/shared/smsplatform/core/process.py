"""A function's process: what its initialisation loads lives as long as the Lambda container.

Python's cyclic garbage collector walks every object it tracks on each full pass. A function's init
leaves some 10^5 of them (pydantic's schemas, boto3's service models, Powertools, the routes) that are
never garbage, so each full pass of an invocation paid for walking them all again: in the sender, 14 ms
of a 1,000-message batch's 45 ms of Python (bench/, ADR 0016). `gc.freeze()` moves what exists at the
end of init out of the collector's sight; what an invocation creates is collected as before.
"""

import gc


def initialised() -> None:
    """The last statement of a handler module: everything loaded so far is permanent."""
    gc.freeze()
