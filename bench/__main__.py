"""`python -m bench`: every benchmark, one after the other."""

from bench import (
    api_latency,
    cold_import,
    contact_import,
    data_lifecycle,
    kannel,
    message_history,
    send_pipeline,
    status_callbacks,
)

cold_import.main()
print()
api_latency.main()
print()
contact_import.main()
print()
pipeline = send_pipeline.main()
print()
kannel.main(results=pipeline)  # beside Kannel, when it is installed (bench/kannel.py says how)
print()
status_callbacks.main(10_000, (0, 50), 2)
print()
message_history.main()
print()
data_lifecycle.main()
