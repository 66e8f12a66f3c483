"""The supervisor: the Lambda bootstrap process. It talks to the Runtime API and never imports user code."""
