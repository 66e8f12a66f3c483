"""A user function whose own modules are called shared, worker and supervisor, like ours."""

import shared
import supervisor
import worker
from shared.util import where


def handler(event, context):
    return {"shared": shared.NAME, "util": where(), "worker": worker.NAME, "supervisor": supervisor.NAME}
