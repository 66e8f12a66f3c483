"""What runs on your laptop, never on Lambda: the Runtime API emulator, the ``serve``, ``invoke`` and ``demo``
commands, and the demo's sample function. The bootstrap (supervisor/, worker/, shared/) never imports this
package; supervisor/cli.py imports its command line only when a local command is asked for."""
