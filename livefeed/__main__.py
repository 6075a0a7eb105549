from livefeed.cli.main import main

raise SystemExit(main())
