import sys

from lockgate.controller.cli import main

sys.exit(main())
