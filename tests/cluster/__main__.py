import sys

from tests.cluster.local import main

sys.exit(main(sys.argv[1:]))
