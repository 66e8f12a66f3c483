"""A trivial function whose handler says which modules the worker had imported when the user's init began: the
first thing this module does is look."""

import sys

AT_INIT = sorted(sys.modules)


def handler(event, context):
    return {"at_init": AT_INIT, "now": sorted(sys.modules)}
