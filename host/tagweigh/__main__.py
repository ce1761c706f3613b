from tagweigh.cli import main

raise SystemExit(main())
