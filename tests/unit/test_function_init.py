"""Each function ends its init by freezing what it loaded (core/process.py): the collector's full passes
then walk only what an invocation creates."""

import ast
import gc

from local.runtime import FunctionRuntime
from local.template import load_stack
from tests.support.paths import ROOT


def _is_initialised_call(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func) == "process.initialised"
        and not node.value.args
    )


def test_every_handler_module_ends_its_init_by_freezing_what_it_loaded() -> None:
    spec = load_stack(ROOT / "template.yaml")
    modules = {fn.code_uri / f"{fn.handler.rpartition('.')[0]}.py" for fn in spec.functions.values()}
    assert len(modules) > 15
    for module in sorted(modules):
        body = ast.parse(module.read_text()).body
        assert _is_initialised_call(body[-1]), f"{module.relative_to(ROOT)} does not end with process.initialised()"
        assert sum(map(_is_initialised_call, body)) == 1


def test_a_loaded_function_leaves_its_init_objects_out_of_the_collectors_passes() -> None:
    spec = load_stack(ROOT / "template.yaml")
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    FunctionRuntime(spec.functions["SenderFunction"])._load()
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the module's imports: pydantic schemas, Powertools, psycopg
    assert len(gc.get_objects()) < frozen  # what the collector still walks is what came after
