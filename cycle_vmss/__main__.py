from cycle_vmss.cli import main

raise SystemExit(main())
