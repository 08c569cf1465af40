"""Loads each function's handler the way Lambda does and invokes it with a Lambda context.

Lambda runs one invocation per execution environment at a time; a function
here keeps a small set of "environments" (its module loaded once each) and
hands each to one caller at a time, so handler-level state is never shared
between concurrent invocations.
"""

import importlib.util
import itertools
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.template import FunctionSpec

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
_module_counter = itertools.count()


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


Handler = Callable[[dict[str, Any], LambdaContext], Any]


class FunctionRuntime:
    def __init__(self, spec: FunctionSpec, max_environments: int = 4) -> None:
        self.spec = spec
        self._idle: queue.LifoQueue[Handler] = queue.LifoQueue()
        self._created = 0
        self._max = max_environments
        self._lock = threading.Lock()

    def _load(self) -> Handler:
        module_file, _, attribute = self.spec.handler.rpartition(".")
        path = self.spec.code_uri / f"{module_file.replace('.', '/')}.py"
        name = f"_lambda_{self.spec.logical_id}_{next(_module_counter)}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load handler module {path}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        handler: Handler = getattr(module, attribute)
        return handler

    def _acquire(self) -> Handler:
        with self._lock:
            create = self._idle.empty() and self._created < self._max
            if create:
                self._created += 1
        if not create:
            return self._idle.get()
        try:
            return self._load()
        except BaseException:
            with self._lock:
                self._created -= 1
            raise

    def warm(self) -> None:
        """Loads one environment now, so import errors show at start and the first call is warm."""
        self._idle.put(self._acquire())

    def invoke(self, event: dict[str, Any]) -> Any:
        handler = self._acquire()
        try:
            context = LambdaContext(self.spec.logical_id, self.spec.memory_size, self.spec.timeout)
            return handler(event, context)
        finally:
            self._idle.put(handler)
