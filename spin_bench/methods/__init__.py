"""The arms of a study (conf/method): one module per method behind the small protocol of methods/base.py.

`method.kind` names the module: `spin` is spin_bench.methods.spin; a dotted path (`my_package.my_arm`) is any
importable module, so an arm can live outside this package. Adding one is adding a module and a YAML, editing
nothing else (docs/architecture.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from spin_bench.methods.base import Method


def method_for(kind: str) -> Method:
    """The method of `method.kind`: the `METHOD` of spin_bench.methods.<kind>, or of the module a dotted kind
    names. A kind that names no such module is a LookupError listing the methods there are."""
    module_name = kind if "." in kind else f"{__name__}.{kind}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise  # the module exists but imports something missing: not a wrong kind
        raise LookupError(f"no module {module_name}; the methods here are {', '.join(builtin_kinds())}, or a dotted "
                          "path to a module of your own") from None  # fmt: skip
    method = getattr(module, "METHOD", None)
    if method is None:
        raise LookupError(f"module {module_name} defines no METHOD (see spin_bench/methods/base.py)")
    return method  # type: ignore[no-any-return]


def builtin_kinds() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")
