"""`python -m monitor.demo`: the README's main job."""

import sys

from monitor.demo.run import main

sys.exit(main())
