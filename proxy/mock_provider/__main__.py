"""``python -m proxy.mock_provider``: run the simulated provider."""

import sys

from proxy.mock_provider.cli import main

sys.exit(main())
