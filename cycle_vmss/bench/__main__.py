import sys

from cycle_vmss.bench.run import main

sys.exit(main())
