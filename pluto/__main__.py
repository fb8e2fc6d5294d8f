import sys

from pluto.cli import main

sys.exit(main())
