"""Code shared by the supervisor and the worker: the pipe protocol and the names of Lambda error types.

Installed as ``lambda_supervisor.shared`` so that it can never shadow a user's own ``shared`` package.
"""
