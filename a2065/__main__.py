import sys

from a2065.cli import main

sys.exit(main())
