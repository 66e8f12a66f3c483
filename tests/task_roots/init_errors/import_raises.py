RATIO = 1 / 0


def handler(event, context):
    return RATIO
