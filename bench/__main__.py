"""`python -m bench`: every benchmark, one after the other."""

from bench import api_latency, cold_import

cold_import.main()
print()
api_latency.main()
