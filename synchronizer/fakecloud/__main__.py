"""``python -m synchronizer.fakecloud``: run the fake cloud (see :mod:`.cli`)."""

from synchronizer.fakecloud.cli import main

raise SystemExit(main())
