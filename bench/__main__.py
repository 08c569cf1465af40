"""`python -m bench`: every benchmark, one after the other."""

from bench import api_latency, cold_import, contact_import

cold_import.main()
print()
api_latency.main()
print()
contact_import.main()
