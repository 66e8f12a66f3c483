"""A handler whose task root holds modules named like the runtime's dependencies (as pip --target puts them)."""

import sys


def handler(event, context):
    return {"ok": True, "task_root_first": sys.path[0]}
