"""The local stack, started the way `make run` starts it, driven over HTTP."""

from collections.abc import Iterator

import httpx
import pytest

from tests.support.databases import DatabaseFactory
from tests.support.local_stack import StackFactory, StackProcess


@pytest.fixture(scope="session")
def stack_factory(tmp_path_factory: pytest.TempPathFactory, fresh_database: DatabaseFactory) -> Iterator[StackFactory]:
    factory = StackFactory(tmp_path_factory, fresh_database)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def stack(stack_factory: StackFactory) -> StackProcess:
    return stack_factory.start()


@pytest.fixture
def client(stack: StackProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        yield http
