from __future__ import annotations

from yoi.cli import main

raise SystemExit(main())
