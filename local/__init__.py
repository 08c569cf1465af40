"""The Docker-free local stack: the same handlers as Lambda, driven the way AWS drives them.

`python -m local run` (or `make run`) starts PostgreSQL, moto, an HTTP gateway,
SQS pollers and the schedule ticks, all read from template.yaml.
"""
