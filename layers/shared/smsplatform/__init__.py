"""Shared library of the bulk SMS platform: domain logic, data access and the HTTP API edge.

Every Lambda function imports it from the shared layer; nothing here connects,
reads secrets or imports boto3 at import time, so cold starts stay cheap.
"""
