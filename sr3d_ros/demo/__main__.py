"""``python -m sr3d_ros.demo`` (see :mod:`sr3d_ros.demo`)."""

import sys

from .cli import main

sys.exit(main())
