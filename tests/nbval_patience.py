"""pytest plugin for `make test-notebooks`: more patience for a cell's last outputs.

After the kernel reports a cell done, nbval waits a hard-coded 5 s for each further output message; on a busy
2-core CI machine a long cell's trailing progress-bar messages can take longer, failing a cell that ran fine
("Timeout of 5 seconds exceeded waiting for output"). A cell's own run time stays bounded by --nbval-cell-timeout.
"""

import pytest

OUTPUT_TIMEOUT_S = 60


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's notebook cells
            item.output_timeout = OUTPUT_TIMEOUT_S
