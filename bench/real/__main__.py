"""`python -m bench.real`: one trace through a real malloc (bench.real.main); `--child` is replay_real's child side."""

import sys

from bench.real import main

sys.exit(main())
