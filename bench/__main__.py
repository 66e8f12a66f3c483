"""``python -m bench [--quick] [--only SCENARIO ...]``."""

from bench.run import main

raise SystemExit(main())
