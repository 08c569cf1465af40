"""The one place Logger and Metrics are created.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, set in the template's Globals. There is no
X-Ray SDK tracer: importing it costs ~230 ms of every cold start, and Lambda's
own active tracing already records each invocation (docs/adr/0003).
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
