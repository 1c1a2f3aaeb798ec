"""`python -m edge` = the `medtrack` command."""

from edge.cli import main

raise SystemExit(main())
