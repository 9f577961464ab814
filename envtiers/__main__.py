import sys

from envtiers.cli import main

sys.exit(main())
