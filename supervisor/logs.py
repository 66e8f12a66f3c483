"""The supervisor's own log lines: loguru to stdout, which Lambda ships to CloudWatch."""

from __future__ import annotations

import sys

from loguru import logger

TEXT_FORMAT = "{time:YYYY-MM-DDTHH:mm:ss.SSS!UTC}Z\t{level}\tlambda-supervisor\t{message}"


def configure_logging(level: str = "INFO") -> None:
    """One sink, stdout, unbuffered enough that a line is out before the next thing can go wrong."""
    logger.remove()
    logger.add(sys.stdout, level=level, format=TEXT_FORMAT, colorize=False, backtrace=False, diagnose=False)
