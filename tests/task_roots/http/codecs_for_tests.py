"""Serialisers named by dotted path in LAMBDA_SUPERVISOR_SERIALISER / _DESERIALISER in the tests."""


def parse_lines(text):
    return {"lines": text.splitlines()}


def to_csv(value):
    return ",".join(str(item) for item in value)


def echo_lines(event, context):
    return event["lines"]


def failing(text):
    raise ValueError("cannot read this")


NOT_CALLABLE = 42
