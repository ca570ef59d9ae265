import sys

from highrate.cli import main

sys.exit(main())
