from livefeed.cli import main

raise SystemExit(main())
