from osiris_action.cli import main

raise SystemExit(main())
