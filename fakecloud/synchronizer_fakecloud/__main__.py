"""``python -m synchronizer_fakecloud``: run the fake cloud (see :mod:`.cli`)."""

from synchronizer_fakecloud.cli import main

raise SystemExit(main())
