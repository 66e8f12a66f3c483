"""A local emulator of the Lambda Runtime API, used by ``lambda-supervisor serve`` and by the tests."""
