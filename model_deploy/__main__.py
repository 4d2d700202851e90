"""``python -m model_deploy``: the AWS rollout's commands (see :mod:`model_deploy.cli`)."""

import sys

from model_deploy.cli import main

sys.exit(main())
